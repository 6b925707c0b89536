"""The cost report's charts (matplotlib's object API on the Agg canvas: no display, no global state)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _spend_chart(cost: dict[str, Any], path: Path) -> bool:
    rows = [r for r in cost["by_stage_model"] if r["known_cost_usd"] > 0]
    if not rows:
        return False
    stages = sorted({r["stage"] for r in rows})
    models = sorted({r["model"] for r in rows})
    fig = _figure(6.5, 3.2)
    ax = fig.add_subplot()
    bottom = [0.0] * len(stages)
    for model in models:
        values = [sum(r["known_cost_usd"] for r in rows if r["stage"] == s and r["model"] == model) for s in stages]
        ax.bar(stages, values, bottom=bottom, label=model)
        bottom = [a + b for a, b in zip(bottom, values, strict=True)]
    ax.set_ylabel("USD")
    ax.set_title("Spend by stage and model")
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return True


def _tokens_chart(cost: dict[str, Any], path: Path) -> bool:
    rows = cost["by_stage"]
    if not rows or not any(r["input_tokens"] + r["output_tokens"] for r in rows):
        return False
    stages = [r["stage"] for r in rows]
    parts = {  # disjoint parts, so that the stack adds up to input + output
        "input (fresh)": [r["input_tokens"] - r["cached_input_tokens"] for r in rows],
        "input (cached)": [r["cached_input_tokens"] for r in rows],
        "output (visible)": [r["output_tokens"] - r["reasoning_tokens"] for r in rows],
        "output (reasoning)": [r["reasoning_tokens"] for r in rows],
    }
    fig = _figure(6.5, 1.8 + 0.5 * len(stages))
    ax = fig.add_subplot()
    left = [0] * len(stages)
    for label, values in parts.items():
        ax.barh(stages, values, left=left, label=label)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_xlabel("tokens")
    ax.set_title("Tokens by stage")
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=4, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    return True


def _funnel_chart(cost: dict[str, Any], path: Path) -> bool:
    f = cost["funnel"]
    if f["generated"] == 0:
        return False
    steps = ["generated", "after filters", "after dedup", "kept"]
    values = [f["generated"], f["after_filters"], f["after_dedup"], f["kept"]]
    reasons = list(f["rejected_by_reason"].items())
    fig = _figure(8.0, 3.2)
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
    ax1.barh(steps[::-1], values[::-1], color="#4c72b0")
    for y, v in enumerate(values[::-1]):
        ax1.text(v, y, f" {v:,}", va="center", fontsize="small")
    ax1.set_xlim(0, max(values) * 1.25)
    ax1.set_title("Funnel")
    if reasons:
        ax2.barh([r for r, _ in reasons][::-1], [n for _, n in reasons][::-1], color="#c44e52")
        ax2.set_title("Rejected, by reason")
    else:
        ax2.text(0.5, 0.5, "nothing rejected", ha="center", va="center")
        ax2.set_axis_off()
    fig.tight_layout()
    fig.savefig(path)
    return True


def draw_cost_charts(cost: dict[str, Any], out_dir: Path) -> list[Path]:
    charts = []
    for name, draw in (("cost_spend.png", _spend_chart), ("cost_tokens.png", _tokens_chart),
                       ("cost_funnel.png", _funnel_chart)):
        path = out_dir / name
        if draw(cost, path):
            charts.append(path)
        elif path.exists():
            path.unlink()  # a chart of an earlier report that no longer applies
    return charts
