"""The cost report's figures, as plain data: spend and tokens by stage and model, the funnel
generated -> filtered -> deduplicated -> kept, what the Batch API saved, the budget used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from factory.cost.reading import (
    TOKEN_KINDS,
    Outputs,
    ReportError,
    read_outputs,
    read_possibly_billed,
    read_requests,
)
from factory.quality import REASON_CONTAMINATION, REASON_DUPLICATE
from factory.errors import FactoryError
from factory.engine.pricing import PriceTable
from factory.recipes.self_instruct import STAGE as SELF_INSTRUCT_STAGE
from factory.recipes.topics import ANSWERS as TOPICS_ANSWERS
from factory.recipes.conversation import FOLLOWUPS
from factory.recipes.evol import EVOLVE
from factory.recipes.topics import QUESTIONS as TOPICS_QUESTIONS
from factory.engine.budget import budget_use
from schemas import RunFolder, Usage

# The ledger stages whose spend buys examples: "$ per kept example" divides their cost only
# (a judge's grading requests are in the same ledger but buy no training data).
GENERATION_STAGES = frozenset({SELF_INSTRUCT_STAGE, TOPICS_QUESTIONS, TOPICS_ANSWERS, FOLLOWUPS, EVOLVE})
# Rejections made by the near-duplicate index; every other reason is a filter's (or a parse failure).
DEDUP_REASONS = frozenset({REASON_DUPLICATE, REASON_CONTAMINATION})


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
        # Time a request spent waiting in the engine (the limiter, the budget, retries), apart from
        # the server's latency: a run whose pace the limits set shows it here, not in the latency.
        pl.col("wait_s").filter(done).quantile(0.5, interpolation="linear").alias("wait_p50_s"),
        pl.col("wait_s").filter(done).quantile(0.95, interpolation="linear").alias("wait_p95_s"),
        pl.when(pl.col("wait_s").is_not_null().any()).then(pl.col("wait_s").sum()).alias("wait_total_s"),
        pl.col("latency_s").sum().alias("latency_total_s"),
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


def budget(config: dict[str, Any], generation_cost: float | None, stages: list[str]) -> dict[str, Any] | None:
    """`max_cost` of the generate command (its [engine] section) against what its stages spent: a
    command's budget covers that command's stages only (a judge's grading has its own)."""
    max_cost = config.get("engine", {}).get("max_cost")
    if max_cost is None:
        return None
    return budget_use("generate", stages, float(max_cost), generation_cost)


def build_cost(run: Path) -> dict[str, Any]:
    """Everything cost.md shows, as plain data (summary.json's "cost")."""
    if not run.is_dir():
        raise ReportError(f"no run folder {run}; pass --run runs/NAME of an existing run")
    requests, has_429 = read_requests(run)
    outputs = read_outputs(run)
    if requests.is_empty() and outputs.kept == 0 and not outputs.reasons:
        raise ReportError(f"{run} has no ledger requests and no examples yet; run `just generate --run {run} ...` first")
    config = RunFolder(run).read_config()
    generation = requests.filter(pl.col("stage").is_in(list(GENERATION_STAGES)))
    gen_totals = overall_totals(generation, has_429) if not generation.is_empty() else None
    gen_cost = gen_totals["cost_usd"] if gen_totals else 0.0
    kept = outputs.kept
    engine = config.get("engine", {})
    prices = _prices(config)
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
        "batch": batch_savings(requests, prices),
        "budget": budget(config, gen_cost, sorted(set(generation["stage"].to_list()))),
        "possibly_billed": read_possibly_billed(run),
        "prices": {"table": prices.dated(), "as_of": prices.as_of, "age_days": prices.age_days(),
                   "warning": prices.staleness_warning()},
    }
