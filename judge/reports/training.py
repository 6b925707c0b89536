"""The training part of a run's report, from `RUN/train/metrics.jsonl` read as plain JSON.

The trainer writes one JSON object per logged step (step, loss, eval_loss where measured, lr,
grad_norm, tokens, tokens_per_s, mfu, peak_gib). The judge may not import the trainer (the
packages' import direction), so this reads the file format, not the trainer's code. Writes
`RUN/report/training.png` (loss and eval-loss curves; tokens/s) and returns the figures for
summary.json's "training".
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from judge.errors import TrainingReportError
from schemas import RunFolder, RunFolderError

CHART_FILE = "training.png"


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics file; a torn last line (a killed run) is skipped."""
    if not path.exists():
        return []
    records = []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for lineno, line in enumerate(lines, start=1):
        if not line.endswith("\n"):
            break  # the torn tail of a killed run
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise TrainingReportError(f"{path}:{lineno} is not JSON ({e}); remove that line and rerun the report") from None
        if not isinstance(record, dict) or "step" not in record:
            raise TrainingReportError(f"{path}:{lineno} has no step; is it a trainer metrics file?")
        records.append(record)
    return records


def _train_settings(run: Path) -> dict[str, Any]:
    """The few trainer settings a reader needs beside the curves, from the run's config.toml."""
    try:
        train = RunFolder(run).config_section("train")
    except RunFolderError:
        return {}  # the cost report names a broken config.toml; the curves do not need it
    lora = train.get("lora", {})
    wanted = {"model": train.get("model"), "lr": train.get("lr"), "max_steps": train.get("max_steps"),
              "epochs": train.get("epochs"), "token_budget": train.get("token_budget"),
              "grad_accum": train.get("grad_accum"), "lora_r": lora.get("r"), "lora_alpha": lora.get("alpha")}
    return {k: v for k, v in wanted.items() if v is not None}


def build_training(run: Path) -> dict[str, Any] | None:
    """Headline figures of the training run, or None when the run has not been trained."""
    records = read_metrics(RunFolder(run).metrics)
    losses = [(r["step"], float(r["loss"])) for r in records if r.get("loss") is not None]
    if not losses:
        return None
    evals = [(r["step"], float(r["eval_loss"])) for r in records if r.get("eval_loss") is not None]
    # The first and last tenth of the logged losses, averaged: one noisy step decides nothing.
    k = max(1, len(losses) // 10)
    first = statistics.fmean(v for _, v in losses[:k])
    last = statistics.fmean(v for _, v in losses[-k:])
    speeds = [float(r["tokens_per_s"]) for r in records if r.get("tokens_per_s")]
    peaks = [float(r["peak_gib"]) for r in records if r.get("peak_gib") is not None]
    mfus = [float(r["mfu"]) for r in records if r.get("mfu") is not None]
    return {
        "steps": max(s for s, _ in losses),
        "logged_steps": len(losses),
        "loss_first": first,
        "loss_last": last,
        "loss_averaged_over": k,
        "loss_fell": last < first,
        "eval_loss_first": evals[0][1] if evals else None,
        "eval_loss_last": evals[-1][1] if evals else None,
        "eval_points": len(evals),
        "tokens_per_s_median": statistics.median(speeds) if speeds else None,
        "peak_gib": max(peaks) if peaks else None,
        "mfu_median": statistics.median(mfus) if mfus else None,
        "settings": _train_settings(run),
        "curves": {"loss": losses, "eval_loss": evals,
                   "tokens_per_s": [(r["step"], r["tokens_per_s"]) for r in records if r.get("tokens_per_s")]},
    }


def draw_training_chart(training: dict[str, Any], path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 3.4), dpi=100)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 1]})
    curves = training["curves"]
    ax1.plot(*zip(*curves["loss"], strict=True), linewidth=1, label="train loss")
    if curves["eval_loss"]:
        ax1.plot(*zip(*curves["eval_loss"], strict=True), "o-", markersize=3, label="eval loss")
    ax1.set_xlabel("optimizer step")
    ax1.set_ylabel("loss (nats per supervised token)")
    ax1.set_title("Loss")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize="small")
    if curves["tokens_per_s"]:
        ax2.plot(*zip(*curves["tokens_per_s"], strict=True), linewidth=1, color="#55a868")
        peak = training["peak_gib"]
        ax2.set_title("Throughput" + (f" (peak memory {peak:.1f} GiB)" if peak is not None else ""), fontsize="medium")
        ax2.set_xlabel("optimizer step")
        ax2.set_ylabel("tokens / s")
        ax2.grid(alpha=0.3)
    else:
        ax2.set_axis_off()
    fig.tight_layout()
    fig.savefig(path)
    return path


def write_training_report(run: Path, out_dir: Path) -> dict[str, Any] | None:
    """training.png in `out_dir` and the figures (without the raw curves), or None if untrained."""
    training = build_training(run)
    chart = out_dir / CHART_FILE
    if training is None:
        if chart.exists():
            chart.unlink()  # left by an earlier report of a run that has since been reset
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    draw_training_chart(training, chart)
    del training["curves"]
    training["chart"] = CHART_FILE
    return training
