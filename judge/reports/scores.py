"""The scores part of a run's report (`python -m judge report`, judge/commands/report.py).

Reads `RUN/eval/judgments.jsonl` and `RUN/eval/answers.jsonl`; writes `RUN/report/scores.md`,
PNG charts beside it, and the "scores" key of `RUN/report/summary.json` (other keys, written by
other stages such as the cost report, are kept).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.cost import ReportError
from judge.reports import stats
from judge.reports.intervals import METHOD_TEXT
from schemas import Answer, JsonlError, Judgment, Question, RunFolder, read_jsonl

MODE_TITLES = {"single": "Single-answer grading (1-10)", "reference": "Reference-guided grading (1-10)"}


@dataclass
class ReportOutput:
    scores_md: Path
    summary_json: Path
    charts: list[Path] = field(default_factory=list)


def load_categories(paths: Sequence[Path]) -> dict[str, str]:
    categories: dict[str, str] = {}
    for p in paths:
        if not p.is_file():
            raise ReportError(f"question file {p} not found")
        for q in read_jsonl(p, Question):
            categories[q.question_id] = q.category
    return categories


def build_scores(judgments: Sequence[Judgment], answers: Sequence[Answer], *,
                 categories: dict[str, str] | None = None, n_resamples: int = stats.DEFAULT_RESAMPLES,
                 confidence: float = stats.DEFAULT_CONFIDENCE, seed: int = stats.DEFAULT_SEED) -> dict[str, Any]:
    """Everything the report shows, as plain data (this is summary.json's "scores")."""
    judgments = stats.latest_judgments(judgments)
    answers = stats.latest_answers(answers)
    frame = stats.judgments_frame(judgments, categories)
    kw = dict(n_resamples=n_resamples, confidence=confidence, seed=seed)
    pairs = stats.pair_rows(frame, **kw)
    consistency = []
    for judge in sorted(set(frame["judge_model"].to_list())):
        overall = [r for r in pairs if r["judge_model"] == judge and r["category"] == "all"]
        n = sum(r["consistency_n"] for r in overall)
        if n:
            agreed = n - sum(r["inconsistent"] for r in overall)
            consistency.append({"judge_model": judge, "consistent": agreed, "n": n, "rate": agreed / n})
    return {
        "settings": {"bootstrap": stats.DEFAULT_METHOD, "resampled": "questions", "resamples": n_resamples,
                     "confidence": confidence, "seed": seed},
        "counts": {"judgments": len(judgments), "answers": len(answers)},
        "judge_models": sorted(set(frame["judge_model"].to_list())),
        "single": stats.score_rows(frame, "single", **kw),
        "reference": stats.score_rows(frame, "reference", **kw),
        "pair": pairs,
        "position_consistency": consistency,
        "unscored": stats.unscored_rows(frame),
        "verbosity": stats.verbosity_rows(answers),
    }


# --- markdown ------------------------------------------------------------------------------------

def _est(e: dict[str, Any] | None, *, pct: bool = False) -> str:
    if e is None:
        return "—"
    if pct:
        return f"{e['value']:.0%} [{e['low']:.0%}, {e['high']:.0%}]"
    return f"{e['value']:.2f} [{e['low']:.2f}, {e['high']:.2f}]"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return lines


def _row_label(r: dict[str, Any]) -> str:
    if r["turn"] is not None:
        return f"turn {r['turn']}"
    return "**all**" if r["category"] == "all" else r["category"]


def _score_section(rows: list[dict[str, Any]], mode: str, judge: str) -> list[str]:
    rows = [r for r in rows if r["judge_model"] == judge]
    if not rows:
        return []
    models = sorted({r["model"] for r in rows})
    labels: list[str] = []
    for r in rows:  # "all" first, then turns, then categories
        if _row_label(r) not in labels:
            labels.append(_row_label(r))
    labels.sort(key=lambda s: (s != "**all**", not s.startswith("turn "), s))
    cell = {(_row_label(r), r["model"]): r for r in rows}
    body = []
    for label in labels:
        line = [label]
        for m in models:
            r = cell.get((label, m))
            if r is None:
                line.append("")
                continue
            n = r["score"]["n"] if r["score"] else 0
            text = f"{_est(r['score'])} n={n}"
            if r["unscored"]:
                text += f" ({r['unscored']} unscored)"
            line.append(text)
        body.append(line)
    return [f"## {MODE_TITLES[mode]} — judge {judge}", "", *_table(["category", *models], body), ""]


def render_markdown(scores: dict[str, Any], run_name: str, charts: Sequence[Path] = ()) -> str:
    s = scores["settings"]
    out = [
        f"# Scores — {run_name}",
        "",
        f"Judgments: {scores['counts']['judgments']}; answers: {scores['counts']['answers']}. "
        f"Intervals: {s['confidence']:.0%} bootstrap ({METHOD_TEXT.get(s['bootstrap'], s['bootstrap'])}) over "
        f"questions, both turns of a question together ({s['resamples']} resamples, seed {s['seed']}). "
        "Items whose verdict could not be parsed after "
        "retries are **unscored**: they are left out of every mean and rate and counted below.",
        "",
    ]
    for judge in scores["judge_models"]:
        for mode in ("single", "reference"):
            out += _score_section(scores[mode], mode, judge)

    overall_pairs = [r for r in scores["pair"] if r["category"] == "all"]
    if overall_pairs:
        out += ["## Pairwise comparison (both orders asked; a disagreement counts as a tie)", ""]
        body = []
        for r in overall_pairs:
            cons = "—" if r["consistency"] is None else f"{r['consistency']:.0%} ({r['consistency_n'] - r['inconsistent']}/{r['consistency_n']})"
            body.append([r["judge_model"], f"{r['model']} vs {r['baseline']}", str(r["scored"]),
                         _est(r["win"], pct=True), _est(r["tie"], pct=True), _est(r["loss"], pct=True),
                         cons, f"{r['unscored']}/{r['total']}"])
        out += _table(["judge", "model vs baseline", "n", "win", "tie", "loss", "position consistency", "unscored"], body)
        out.append("")
        by_cat = [r for r in scores["pair"] if r["category"] != "all"]
        if by_cat:
            out += ["### Win / tie / loss by category", ""]
            body = [[r["judge_model"], f"{r['model']} vs {r['baseline']}", r["category"], str(r["scored"]),
                     "—" if r["win"] is None else f"{r['win']['value']:.0%} / {r['tie']['value']:.0%} / {r['loss']['value']:.0%}"]
                    for r in by_cat]
            out += _table(["judge", "model vs baseline", "category", "n", "win / tie / loss"], body)
            out.append("")
    for c in scores["position_consistency"]:
        out += [f"Position consistency of {c['judge_model']}: {c['rate']:.0%} "
                f"({c['consistent']} of {c['n']} comparisons gave the same winner in both orders).", ""]

    if scores["unscored"]:
        out += ["## Unscored items", ""]
        body = []
        for r in scores["unscored"]:
            reasons = "; ".join(f"{x['reason'][:80]} ×{x['count']}" for x in r["top_reasons"])
            body.append([r["judge_model"], r["mode"], r["model"], r["baseline"] or "—",
                         f"{r['unscored']}/{r['total']}", f"{r['rate']:.1%}", reasons or "—"])
        out += _table(["judge", "mode", "model", "baseline", "unscored", "rate", "top reasons"], body)
        out.append("")

    if scores["verbosity"]:
        out += ["## Answer length (verbosity)", ""]
        body = [[r["model"], str(r["answers"]), str(r["turns"]),
                 "—" if r["mean_chars"] is None else f"{r['mean_chars']:.0f}",
                 "—" if r["mean_tokens"] is None else f"{r['mean_tokens']:.0f}"]
                for r in scores["verbosity"]]
        out += _table(["model", "answers", "turns", "mean characters per turn", "mean tokens per turn"], body)
        out += ["", "Judges tend to favour longer answers; compare lengths before reading a win as quality.", ""]

    if charts:
        out += ["## Charts", ""] + [f"![{c.stem}]({c.name})" for c in charts] + [""]
    return "\n".join(out)


# --- charts --------------------------------------------------------------------------------------

def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "judge"


def _figure(width: float, height: float) -> Any:
    # The object API with the Agg canvas: no pyplot, no global backend switch, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _score_chart(rows: list[dict[str, Any]], mode: str, judge: str, path: Path) -> bool:
    rows = [r for r in rows if r["judge_model"] == judge and r["turn"] is None and r["score"]]
    if not rows:
        return False
    categories = ["all"] + sorted({r["category"] for r in rows} - {"all"})
    models = sorted({r["model"] for r in rows})
    cell = {(r["category"], r["model"]): r["score"] for r in rows}
    fig = _figure(max(6.0, 1.0 + 0.9 * len(categories) * max(1, len(models)) / 2), 4.2)
    ax = fig.add_subplot()
    width = 0.8 / len(models)
    for i, m in enumerate(models):
        xs, ys, lo, hi = [], [], [], []
        for k, c in enumerate(categories):
            e = cell.get((c, m))
            if e is None:
                continue
            xs.append(k - 0.4 + width * (i + 0.5))
            ys.append(e["value"])
            lo.append(e["value"] - e["low"])
            hi.append(e["high"] - e["value"])
        ax.bar(xs, ys, width=width, yerr=[lo, hi], capsize=3, label=m)
    ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
    ax.set_ylim(0, 10.5)
    ax.set_ylabel("mean score (95% CI)")
    ax.set_title(f"{MODE_TITLES[mode]} — judge {judge}")
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    return True


def _win_chart(rows: list[dict[str, Any]], path: Path) -> bool:
    rows = [r for r in rows if r["category"] == "all" and r["win"] is not None]
    if not rows:
        return False
    labels = [f"{r['model']} vs {r['baseline']}" + (f" ({r['judge_model']})" if len({x['judge_model'] for x in rows}) > 1 else "")
              for r in rows]
    fig = _figure(7.5, 2.0 + 0.6 * len(rows))
    ax = fig.add_subplot()
    colours = {"win": "#2e7d32", "tie": "#9e9e9e", "loss": "#c62828"}
    left = [0.0] * len(rows)
    for outcome in stats.PAIR_OUTCOMES:
        widths = [r[outcome]["value"] for r in rows]
        ax.barh(range(len(rows)), widths, left=left, color=colours[outcome], label=outcome)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    wins = [r["win"] for r in rows]
    ax.errorbar([w["value"] for w in wins], range(len(rows)),
                xerr=[[w["value"] - w["low"] for w in wins], [w["high"] - w["value"] for w in wins]],
                fmt="none", ecolor="black", capsize=4)
    for y, r in enumerate(rows):
        if r["consistency"] is not None:
            ax.text(1.01, y, f"consistency {r['consistency']:.0%}", va="center", fontsize="small")
    ax.set_yticks(range(len(rows)), labels)
    ax.set_xlim(0, 1.3)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"])
    ax.set_xlabel("share of comparisons (bar on win: 95% CI)")
    ax.set_title("Pairwise win / tie / loss")
    ax.legend(loc="upper center", bbox_to_anchor=(0.4, -0.45), ncol=3, fontsize="small", frameon=False)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    return True


def draw_charts(scores: dict[str, Any], out_dir: Path) -> list[Path]:
    written = []
    judges = scores["judge_models"]
    for judge in judges:
        for mode in ("single", "reference"):
            suffix = "" if len(judges) == 1 else f"_{_slug(judge)}"
            path = out_dir / f"scores_{mode}{suffix}.png"
            if _score_chart(scores[mode], mode, judge, path):
                written.append(path)
    path = out_dir / "win_rates.png"
    if _win_chart(scores["pair"], path):
        written.append(path)
    return written


def write_report(run: Path, *, questions: Sequence[Path] = (), n_resamples: int = stats.DEFAULT_RESAMPLES,
                 confidence: float = stats.DEFAULT_CONFIDENCE, seed: int = stats.DEFAULT_SEED) -> ReportOutput:
    if not run.is_dir():
        raise ReportError(f"no run folder {run}; pass --run runs/NAME of an existing run")
    folder = RunFolder(run)
    judgments_path, answers_path = folder.judgments, folder.answers
    if not judgments_path.exists() and not answers_path.exists():
        raise ReportError(f"{run}/eval has neither judgments.jsonl nor answers.jsonl; generate answers and grade them first")
    try:
        judgments = read_jsonl(judgments_path, Judgment)
        answers = read_jsonl(answers_path, Answer)
        categories = load_categories(questions)
    except JsonlError as e:
        raise ReportError(str(e)) from e

    scores = build_scores(judgments, answers, categories=categories, n_resamples=n_resamples,
                          confidence=confidence, seed=seed)
    folder.report_dir.mkdir(parents=True, exist_ok=True)
    charts = draw_charts(scores, folder.report_dir)
    scores["charts"] = [c.name for c in charts]
    folder.scores_md.write_text(render_markdown(scores, run.name, charts), encoding="utf-8")
    summary = folder.merge_summary("scores", scores)
    return ReportOutput(scores_md=folder.scores_md, summary_json=summary, charts=charts)
