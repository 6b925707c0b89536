"""`python -m factory report --run RUN`: what a run cost and what it kept, from its own files.

Reads (never writes) `RUN/ledger.sqlite`, `RUN/examples.jsonl`, `RUN/rejected.jsonl` and
`RUN/config.toml`; writes `RUN/report/cost.md`, charts beside it (`cost_*.png`) and the "cost"
key of `RUN/report/summary.json` (the keys other reports wrote there are kept).

What it shows: spend by stage and by model; tokens (input, cached input, output, reasoning);
$ per kept example and per 1,000; the funnel generated -> filtered -> deduplicated -> kept with
every rejection reason; requests, HTTP attempts, retries, 429s and latency p50/p95; what the
Batch API saved against online prices; the budget used. Money comes from the ledger, which the
engine filled from each response's `usage`: nothing here is an estimate, and a model without a
price is "unknown", never $0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from factory.quality import REASON_CONTAMINATION, REASON_DUPLICATE
from factory.errors import FactoryError
from factory.engine.ledger import LEDGER_FILE
from factory.engine.pricing import PriceTable
from factory.recipes.outputs import EXAMPLES_FILE, REJECTED_FILE
from factory.recipes.self_instruct import STAGE as SELF_INSTRUCT_STAGE
from factory.recipes.topics import ANSWERS as TOPICS_ANSWERS
from factory.recipes.topics import QUESTIONS as TOPICS_QUESTIONS
from factory.engine.settings import CONFIG_FILE
from factory.simulator.text import MARKER as SIMULATED_MARKER
from schemas import Example, JsonlError, Rejected, Usage, iter_jsonl

REPORT_DIR = "report"
SUMMARY_FILE = "summary.json"
# The ledger stages whose spend buys examples: "$ per kept example" divides their cost only
# (a judge's grading requests are in the same ledger but buy no training data).
GENERATION_STAGES = frozenset({SELF_INSTRUCT_STAGE, TOPICS_QUESTIONS, TOPICS_ANSWERS})
# Rejections made by the near-duplicate index; every other reason is a filter's (or a parse failure).
DEDUP_REASONS = frozenset({REASON_DUPLICATE, REASON_CONTAMINATION})
TOKEN_KINDS = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens")


class ReportError(FactoryError):
    """A run folder the report cannot read; the message says what to do."""


@dataclass
class CostReport:
    cost_md: Path
    summary_json: Path
    charts: list[Path] = field(default_factory=list)
    cost: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Reading the run folder


_REQUEST_SCHEMA = {
    "stage": pl.String, "model": pl.String, "status": pl.String, "attempts": pl.Int64,
    "input_tokens": pl.Int64, "cached_input_tokens": pl.Int64, "output_tokens": pl.Int64,
    "reasoning_tokens": pl.Int64, "cost_usd": pl.Float64, "latency_s": pl.Float64, "batch": pl.Int64,
    "rate_limited": pl.Int64,
}


def read_requests(run: Path) -> tuple[pl.DataFrame, bool]:
    """Every ledger request (no response texts), and whether the ledger counts 429s per request.

    Opened read-only: a report may run while a stage is still writing (WAL lets it read a
    consistent snapshot) and must never create a ledger where there was none."""
    path = run / LEDGER_FILE
    if not path.exists():
        return pl.DataFrame(schema=_REQUEST_SCHEMA), False
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise ReportError(f"cannot open {path} ({e}); is it a ledger written by `python -m factory`?") from None
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(requests)")}
        if not columns:
            raise ReportError(f"{path} has no requests table; it is not a ledger written by `python -m factory`")
        # Older ledgers have no per-request 429 counter: the report then says "not recorded".
        has_429 = "rate_limited" in columns
        rate_limited = "rate_limited" if has_429 else "NULL"
        rows = db.execute(
            "SELECT stage, model, status, attempts, input_tokens, cached_input_tokens, output_tokens, "
            f"reasoning_tokens, cost_usd, latency_s, batch, {rate_limited} FROM requests"
        ).fetchall()
    except sqlite3.DatabaseError as e:
        raise ReportError(f"cannot read {path} ({e}); is it a ledger written by `python -m factory`?") from None
    finally:
        db.close()
    return pl.DataFrame(rows, schema=_REQUEST_SCHEMA, orient="row"), has_429


@dataclass(frozen=True)
class Outputs:
    kept: int
    reasons: dict[str, int]  # rejection reason -> count, most frequent first
    simulated: bool  # the kept texts carry the simulator's marker


def read_outputs(run: Path) -> Outputs:
    """Kept examples and rejections by reason (a torn last line, from a crash, is skipped)."""
    kept = 0
    simulated = False
    try:
        for ex in iter_jsonl(run / EXAMPLES_FILE, Example):
            kept += 1
            simulated = simulated or SIMULATED_MARKER in ex.output
        reasons = [r.reason for r in iter_jsonl(run / REJECTED_FILE, Rejected)]
    except JsonlError as e:
        raise ReportError(f"{e}; fix or remove that line, then rerun the report") from None
    counts = (
        pl.DataFrame({"reason": reasons}, schema={"reason": pl.String})
        .group_by("reason").len()
        .sort(["len", "reason"], descending=[True, False])
    )
    return Outputs(kept, dict(zip(counts["reason"].to_list(), counts["len"].to_list(), strict=True)), simulated)


def read_config(run: Path) -> dict[str, Any]:
    path = run / CONFIG_FILE
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ReportError(f"{path} is not valid TOML ({e}); fix or remove it") from None


# --------------------------------------------------------------------------------------------
# Aggregation


def _aggregations() -> list[pl.Expr]:
    done = pl.col("status") == "done"
    tokens = pl.col("input_tokens") + pl.col("output_tokens")
    return [
        pl.len().alias("requests"),
        done.sum().alias("done"),
        (pl.col("status") == "failed").sum().alias("failed"),
        (pl.col("status") == "pending").sum().alias("pending"),
        pl.col("attempts").sum().alias("http_attempts"),
        (pl.col("attempts") - 1).clip(lower_bound=0).sum().alias("retries"),
        pl.col("rate_limited").sum().alias("rate_limited"),
        pl.col("batch").sum().alias("batch_requests"),
        *[pl.col(k).sum().alias(k) for k in TOKEN_KINDS],
        pl.col("cost_usd").fill_null(0.0).sum().alias("known_cost_usd"),
        (pl.col("cost_usd").is_null() & (tokens > 0)).sum().alias("unpriced"),
        pl.col("latency_s").filter(done).quantile(0.5, interpolation="linear").alias("latency_p50_s"),
        pl.col("latency_s").filter(done).quantile(0.95, interpolation="linear").alias("latency_p95_s"),
    ]


def _rows(df: pl.DataFrame, has_429: bool) -> list[dict[str, Any]]:
    """Plain dicts; `cost_usd` is None where any request of the group has no price."""
    out = []
    for row in df.iter_rows(named=True):
        row["cost_usd"] = None if row["unpriced"] else row["known_cost_usd"]
        if not has_429:
            row["rate_limited"] = None
        out.append(row)
    return out


def group_totals(requests: pl.DataFrame, by: list[str], has_429: bool) -> list[dict[str, Any]]:
    if requests.is_empty():
        return []
    return _rows(requests.group_by(by).agg(_aggregations()).sort(by), has_429)


def overall_totals(requests: pl.DataFrame, has_429: bool) -> dict[str, Any]:
    return _rows(requests.select(_aggregations()), has_429)[0]


def funnel(outputs: Outputs) -> dict[str, Any]:
    """generated -> filtered -> deduplicated -> kept. Every item a recipe produced (a parse
    failure included) is either kept or rejected once, with its reason."""
    filtered = {r: n for r, n in outputs.reasons.items() if r not in DEDUP_REASONS}
    deduped = {r: n for r, n in outputs.reasons.items() if r in DEDUP_REASONS}
    generated = outputs.kept + sum(outputs.reasons.values())
    after_filters = generated - sum(filtered.values())
    return {
        "generated": generated,
        "after_filters": after_filters,
        "after_dedup": after_filters - sum(deduped.values()),
        "kept": outputs.kept,
        "removed_by_filters": filtered,
        "removed_by_dedup": deduped,
        "rejected_by_reason": dict(outputs.reasons),
        "rejected": sum(outputs.reasons.values()),
    }


def _prices(config: dict[str, Any]) -> PriceTable:
    """The prices the run was paid at: the shipped table, then the run's own price settings."""
    engine = config.get("engine", {})
    prices_file = engine.get("prices_file")
    try:
        table = PriceTable.load(prices_file if prices_file and Path(prices_file).is_file() else None)
    except FactoryError as e:
        raise ReportError(f"the run's price settings: {e}") from None
    return table.with_override(engine.get("price_input"), engine.get("price_output"))


def batch_savings(requests: pl.DataFrame, prices: PriceTable) -> dict[str, Any] | None:
    """Answered Batch API requests: what they cost against what the same usage costs online."""
    batch = requests.filter((pl.col("batch") == 1) & (pl.col("status") == "done"))
    if batch.is_empty():
        return None
    actual = 0.0
    online: float | None = 0.0
    unpriced = 0
    for row in batch.iter_rows(named=True):
        usage = Usage(**{k: row[k] for k in TOKEN_KINDS})
        if row["cost_usd"] is None:
            unpriced += 1
            continue
        actual += row["cost_usd"]
        at_online = prices.cost(row["model"], usage, batch=False)
        online = None if at_online is None or online is None else online + at_online
    saved = None if online is None else online - actual
    return {
        "requests": batch.height,
        "unpriced": unpriced,
        "actual_usd": actual,
        "online_usd": online,
        "saved_usd": saved,
        "saved_share": None if saved is None or not online else saved / online,
        "prices_as_of": prices.as_of,
    }


def budget(config: dict[str, Any], generation_cost: float | None) -> dict[str, Any] | None:
    """`max_cost` of the generate command (its [engine] section) against what generation spent."""
    max_cost = config.get("engine", {}).get("max_cost")
    if max_cost is None:
        return None
    return {
        "max_cost_usd": float(max_cost),
        "spent_usd": generation_cost,
        "used_share": None if generation_cost is None else generation_cost / float(max_cost),
    }


def build_cost(run: Path) -> dict[str, Any]:
    """Everything cost.md shows, as plain data (summary.json's "cost")."""
    if not run.is_dir():
        raise ReportError(f"no run folder {run}; pass --run runs/NAME of an existing run")
    requests, has_429 = read_requests(run)
    outputs = read_outputs(run)
    if requests.is_empty() and outputs.kept == 0 and not outputs.reasons:
        raise ReportError(f"{run} has no ledger requests and no examples yet; run `just generate --run {run} ...` first")
    config = read_config(run)
    generation = requests.filter(pl.col("stage").is_in(list(GENERATION_STAGES)))
    gen_totals = overall_totals(generation, has_429) if not generation.is_empty() else None
    gen_cost = gen_totals["cost_usd"] if gen_totals else 0.0
    kept = outputs.kept
    engine = config.get("engine", {})
    return {
        "run": run.name,
        "source": {
            "base_url": engine.get("base_url"),
            "model": engine.get("model"),
            "recipe": config.get("generate", {}).get("recipe"),
            "simulated": outputs.simulated,
        },
        "totals": overall_totals(requests, has_429) if not requests.is_empty() else None,
        "by_stage_model": group_totals(requests, ["stage", "model"], has_429),
        "by_stage": group_totals(requests, ["stage"], has_429),
        "by_model": group_totals(requests, ["model"], has_429),
        "rate_limited_recorded": has_429,
        "generation": {
            "stages": sorted(set(generation["stage"].to_list())),
            "cost_usd": gen_cost,
            "kept": kept,
            "usd_per_kept": None if gen_cost is None or kept == 0 else gen_cost / kept,
            "usd_per_1000_kept": None if gen_cost is None or kept == 0 else 1000 * gen_cost / kept,
        },
        "funnel": funnel(outputs),
        "batch": batch_savings(requests, _prices(config)),
        "budget": budget(config, gen_cost),
    }


# --------------------------------------------------------------------------------------------
# Markdown


def usd(x: float | None) -> str:
    if x is None:
        return "unknown"
    if x == 0:
        return "$0"
    if abs(x) >= 1:
        return f"${x:,.2f}"
    # Below a dollar, three significant digits: $0.0403, $0.000131 (a per-example cost is tiny).
    decimals = max(2, 2 - math.floor(math.log10(abs(x))))
    return f"${x:.{decimals}f}"


def seconds(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f} s"


def _n(x: int | None) -> str:
    return "not recorded" if x is None else f"{x:,}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")
    return ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(map(esc, r)) + " |" for r in rows], ""]


def render_cost_markdown(cost: dict[str, Any], charts: Sequence[Path] = ()) -> str:
    t, g, f = cost["totals"], cost["generation"], cost["funnel"]
    src = cost["source"]
    out = [f"# Cost — {cost['run']}", ""]
    if src["simulated"]:
        out += ["> The texts of this run come from the local **simulator** (`python -m factory simulate`), "
                "not a model: its token counts are simulated, and its dollar figures are what the same "
                "usage would cost at the listed prices.", ""]
    described = [f"{name} `{src[key]}`" for name, key in (("endpoint", "base_url"), ("model", "model"),
                                                           ("recipe", "recipe")) if src[key]]
    if described:
        out += ["Generated with " + ", ".join(described) + ".", ""]
    out += [
        "## Headline", "",
        f"- Spent: **{usd(t['cost_usd'] if t else 0.0)}** in all "
        f"({t['requests'] if t else 0:,} requests)"
        + (f"; {t['unpriced']} requests have no known price (known part {usd(t['known_cost_usd'])})"
           if t and t["unpriced"] else ""),
        f"- Generation: {usd(g['cost_usd'])} for **{g['kept']:,}** kept examples: "
        f"**{usd(g['usd_per_kept'])} per example**, {usd(g['usd_per_1000_kept'])} per 1,000",
    ]
    if cost["budget"]:
        b = cost["budget"]
        share = "unknown" if b["used_share"] is None else f"{b['used_share']:.1%}"
        out.append(f"- Budget (--max-cost of generate): {usd(b['spent_usd'])} of {usd(b['max_cost_usd'])} used ({share})")
    else:
        out.append("- Budget: none set (generate ran without --max-cost)")
    out.append("")

    if cost["by_stage_model"]:
        out += ["## Spend and tokens by stage and model", ""]
        out += _table(
            ["stage", "model", "requests", "cost", "input", "cached input", "output", "reasoning"],
            [[r["stage"], r["model"], f"{r['requests']:,}", usd(r["cost_usd"]), f"{r['input_tokens']:,}",
              f"{r['cached_input_tokens']:,}", f"{r['output_tokens']:,}", f"{r['reasoning_tokens']:,}"]
             for r in cost["by_stage_model"]],
        )
        out += ["Reasoning tokens are part of the output tokens (as the API reports them); cached input "
                "tokens are part of the input tokens and are billed at the cached price.", ""]
        out += ["### By model", ""]
        out += _table(["model", "requests", "cost", "input", "output"],
                      [[r["model"], f"{r['requests']:,}", usd(r["cost_usd"]), f"{r['input_tokens']:,}",
                        f"{r['output_tokens']:,}"] for r in cost["by_model"]])

    out += ["## Funnel", "",
            *_table(["step", "items", "removed", "by reason"], [
                ["generated", f"{f['generated']:,}", "", ""],
                ["after filters", f"{f['after_filters']:,}", f"{f['generated'] - f['after_filters']:,}",
                 ", ".join(f"{r} {n:,}" for r, n in f["removed_by_filters"].items()) or "—"],
                ["after dedup", f"{f['after_dedup']:,}", f"{f['after_filters'] - f['after_dedup']:,}",
                 ", ".join(f"{r} {n:,}" for r, n in f["removed_by_dedup"].items()) or "—"],
                ["kept (examples.jsonl)", f"{f['kept']:,}", "", ""],
            ])]
    if f["rejected_by_reason"]:
        out += _table(["rejection reason (rejected.jsonl)", "count", "share of generated"],
                      [[r, f"{n:,}", f"{n / f['generated']:.1%}"] for r, n in f["rejected_by_reason"].items()])

    if cost["by_stage"]:
        out += ["## Requests", ""]
        rows = [[r["stage"], f"{r['requests']:,}", f"{r['failed']:,}", f"{r['pending']:,}",
                 f"{r['http_attempts']:,}", f"{r['retries']:,}", _n(r["rate_limited"]),
                 seconds(r["latency_p50_s"]), seconds(r["latency_p95_s"])] for r in cost["by_stage"]]
        rows.append(["**all**", f"{t['requests']:,}", f"{t['failed']:,}", f"{t['pending']:,}",
                     f"{t['http_attempts']:,}", f"{t['retries']:,}", _n(t["rate_limited"]),
                     seconds(t["latency_p50_s"]), seconds(t["latency_p95_s"])])
        out += _table(["stage", "requests", "failed", "pending", "HTTP attempts", "retries", "429s",
                       "latency p50", "latency p95"], rows)
        out += ["Retries are attempts beyond the first (a 429, a 5xx, a timeout, a dropped connection). "
                "Latency is of the answered attempt, from sending to the whole answer."
                + ("" if cost["rate_limited_recorded"] else
                   " This ledger does not count 429s per request: the live progress line and the "
                   "command's closing summary show them."), ""]

    out += ["## Batch API", ""]
    b = cost["batch"]
    if b is None:
        out += ["No request went through the Batch API (`--batch`); it would halve the price of most models "
                "at the cost of waiting (up to 24 hours).", ""]
    else:
        share = "" if b["saved_share"] is None else f" ({b['saved_share']:.0%})"
        out += [f"{b['requests']:,} requests answered through the Batch API cost {usd(b['actual_usd'])}; "
                f"the same usage at online prices ({b['prices_as_of']}) would cost {usd(b['online_usd'])}: "
                f"saved **{usd(b['saved_usd'])}**{share}.", ""]
    if charts:
        out += ["## Charts", "", *[f"![{c.stem}]({c.name})" for c in charts], ""]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Charts (matplotlib's object API on the Agg canvas: no display, no global state)


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


# --------------------------------------------------------------------------------------------
# Files


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def merge_summary(path: Path, key: str, value: Any) -> None:
    """Set `key` of the JSON object at `path`, keeping its other keys (other reports'); atomic."""
    current: dict[str, Any] = {}
    if path.exists():
        try:
            current = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ReportError(f"{path} is not valid JSON ({e}); fix or remove it, then rerun the report") from None
        if not isinstance(current, dict):
            raise ReportError(f"{path} holds a JSON {type(current).__name__}, not an object; fix or remove it")
    current[key] = _json_safe(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(current, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_cost_report(run: Path) -> CostReport:
    cost = build_cost(run)
    out_dir = run / REPORT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = draw_cost_charts(cost, out_dir)
    cost["charts"] = [c.name for c in charts]
    md = out_dir / "cost.md"
    md.write_text(render_cost_markdown(cost, charts), encoding="utf-8")
    summary = out_dir / SUMMARY_FILE
    merge_summary(summary, "cost", cost)
    return CostReport(cost_md=md, summary_json=summary, charts=charts, cost=cost)


# --------------------------------------------------------------------------------------------
# Command line


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report",
        help="cost report of a run: report/cost.md, charts, summary.json",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run", type=Path, required=True, help="the run folder, e.g. runs/NAME")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    out = write_cost_report(args.run)
    g = out.cost["generation"]
    print(f"cost: {usd(out.cost['totals']['cost_usd'] if out.cost['totals'] else 0.0)} in all; "
          f"{g['kept']:,} kept examples at {usd(g['usd_per_kept'])} each")
    print(f"wrote {out.cost_md}, {out.summary_json}" + "".join(f", {c}" for c in out.charts))
    return 0


__all__ = [
    "GENERATION_STAGES",
    "ReportError",
    "add_parser",
    "build_cost",
    "main",
    "merge_summary",
    "render_cost_markdown",
    "write_cost_report",
]
