"""What the loop reports: metrics.jsonl (one line per logged step), loss.png, a live progress line, MFU.

MFU counts 4N FLOPs per trained token, N = the weights that take part in matrix products (every
nn.Linear of the base model, the LM head included even when it is tied to the embeddings): the forward
pass costs 2N and the backward pass 2N for the activation gradients; frozen weights get no weight
gradient, and the LoRA matrices are too small to matter. Attention's own FLOPs are left out, as in
nanoGPT's and PaLM's accounting, so MFU is a slight underestimate for long sequences.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import torch

# Dense bf16 peak of the cards we know (spec sheets, no sparsity). An unknown card gets no MFU, not a guess.
PEAK_BF16_FLOPS: list[tuple[str, float]] = [
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989.4e12),  # SXM / HBM3
    ("H200", 989.4e12),
    ("GH200", 989.4e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
]


def peak_flops(device: torch.device, dtype: torch.dtype) -> float | None:
    """The card's dense bf16 peak in FLOP/s, or None where unknown (CPU, fp32, an unlisted card)."""
    if device.type != "cuda" or dtype != torch.bfloat16:
        return None
    name = torch.cuda.get_device_name(device)
    for key, flops in PEAK_BF16_FLOPS:
        if key in name:
            return flops
    return None


def matmul_params(model: torch.nn.Module) -> int:
    """N: weights of every nn.Linear outside the LoRA adapters, the (possibly tied) LM head counted once."""
    n = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and "lora_" not in name:
            n += module.weight.numel()
    return n


def flops_per_token(n_matmul_params: int) -> int:
    return 4 * n_matmul_params


def peak_memory_gib(device: torch.device) -> float:
    """Peak CUDA memory allocated by tensors, or on CPU the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class MetricsLog:
    """Appends one JSON object per line to train/metrics.jsonl.

    On resume from step k, lines for steps after k (logged by the killed run after its last checkpoint)
    are dropped first, so the file holds each step once and the resumed run's lines follow on.
    """

    def __init__(self, path: Path, *, resume_step: int) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_metrics(path) if r.get("step", 0) <= resume_step]
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        os.replace(tmp, path)
        self._f = path.open("a", encoding="utf-8")

    def log(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(record) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics file; a torn last line (a kill mid-write) is skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        if line.strip():
            out.append(json.loads(line))
    return out


def plot_losses(metrics_path: Path, out_png: Path) -> None:
    """train/loss.png: training loss per step, eval loss where measured."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    records = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in records if r.get("loss") is not None]
    evals = [(r["step"], r["eval_loss"]) for r in records if r.get("eval_loss") is not None]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train loss", linewidth=1)
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss", markersize=3)
    ax.set_xlabel("optimizer step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("loss (nats per supervised token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = out_png.with_name(f".{out_png.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, out_png)


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class StatusLine:
    """A one-line status on stderr: rewritten in place on a terminal, a line per update otherwise."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.t0 = time.perf_counter()

    def show(self, line: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class Progress(StatusLine):
    """Training's status line: step, loss, lr, tokens/s, MFU, memory, ETA."""

    def __init__(self, total_steps: int, start_step: int, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self.total = total_steps
        self.start_step = start_step

    def update(self, step: int, record: dict[str, Any]) -> None:
        done = step - self.start_step
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / done * (self.total - step) if done > 0 else float("inf")
        parts = [f"step {step}/{self.total}", f"loss {record['loss']:.4f}"]
        if record.get("eval_loss") is not None:
            parts.append(f"eval {record['eval_loss']:.4f}")
        parts += [f"lr {record['lr']:.2e}", f"{record['tokens_per_s']:,.0f} tok/s"]
        if record.get("mfu") is not None:
            parts.append(f"MFU {100 * record['mfu']:.1f}%")
        parts += [f"{record['peak_gib']:.1f} GiB", f"ETA {format_duration(eta)}"]
        self.show(" | ".join(parts))


class ProgressBar(Progress):
    """The same status as a tqdm bar (tqdm.auto: a widget in a notebook, where a line per update
    would flood the cell). The opening line still goes to `stream`."""

    def __init__(self, total_steps: int, start_step: int, stream: TextIO | None = None) -> None:
        super().__init__(total_steps, start_step, stream)
        from tqdm.auto import tqdm

        self._bar: Any = tqdm(total=total_steps, initial=start_step, desc="training", unit="step", dynamic_ncols=True)

    def update(self, step: int, record: dict[str, Any]) -> None:
        parts = [f"loss {record['loss']:.4f}"]
        if record.get("eval_loss") is not None:
            parts.append(f"eval {record['eval_loss']:.4f}")
        parts.append(f"{record['tokens_per_s']:,.0f} tok/s")
        self._bar.n = step
        self._bar.set_postfix_str(", ".join(parts), refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


class AnswerProgress(StatusLine):
    """Answering's status line: questions answered of those asked, tokens/s, ETA."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self.total, self.label = total, label
        self.done = self.tokens = 0

    def update(self, questions: int, tokens: int) -> None:
        """`questions` more answered, with `tokens` generated tokens."""
        self.done += questions
        self.tokens += tokens
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.done * (self.total - self.done) if self.done else float("inf")
        self.show(f"answers {self.label}: {self.done}/{self.total} questions | "
                  f"{self.tokens / max(elapsed, 1e-9):,.0f} tok/s | ETA {format_duration(eta)}")


class AnswerProgressBar(AnswerProgress):
    """The same as a tqdm bar (a widget in a notebook)."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        super().__init__(total, label, stream)
        from tqdm.auto import tqdm

        self._bar: Any = tqdm(total=total, desc=f"answering ({label})", unit="question", dynamic_ncols=True)

    def update(self, questions: int, tokens: int) -> None:
        self.done += questions
        self.tokens += tokens
        self._bar.set_postfix_str(f"{self.tokens / max(time.perf_counter() - self.t0, 1e-9):,.0f} tok/s",
                                  refresh=False)
        self._bar.update(questions)

    def close(self) -> None:
        self._bar.close()
