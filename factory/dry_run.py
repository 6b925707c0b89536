"""The dry run of a generation run: what it would send, cost and take, with nothing sent and the run
folder untouched. The figures are computed once (`project`) and both the printed plan
(`python -m factory generate --dry-run`) and the Python API's `GenerationPlan` are made from them.

Requests are projected as a range: the recipe's yield is not known before a run (a default range)
or is known from what the folder measured (its own interval); cost and duration follow the range.
"""

from __future__ import annotations

from dataclasses import dataclass

from factory.engine.ledger import Limits, learned_limits
from factory.engine.pricing import price_table_for
from factory.engine.settings import EngineSettings
from factory.engine.tokens import estimate_input, estimator_name
from factory.engine.money import usd
from factory.generation import Resolved, build_recipe
from factory.recipes.base import Context, Recipe
from schemas import Usage


@dataclass(frozen=True)
class StageProjection:
    """One stage of the plan. Tokens are estimates, counted on the rendered prompts."""

    stage: str
    requests: int  # expected (at the assumed yield)
    requests_low: int  # at the high end of the yield
    requests_high: int  # at the low end of the yield
    input_tokens: int  # of the expected requests
    max_output_tokens: int  # the sum of max_tokens over the expected requests: the most they are billed for
    expected_output_tokens: float | None  # None: not known before the run
    counted: str  # what the token counts were made on
    assumptions: tuple[str, ...]


@dataclass(frozen=True)
class DryRun:
    """A run's plan: its stages and totals, and the text the command prints."""

    stages: tuple[StageProjection, ...]
    kept: int  # examples the run folder holds already
    cost_max_usd: float | None  # the most requests, each answer to max_tokens; None: no price for the model
    cost_expected_usd: float | None  # the expected requests at the expected answer length
    text: str


def dry_run(r: Resolved) -> DryRun:
    """The plan of a resolved run; nothing is sent or written."""
    recipe, ctx = build_recipe(r, dry_run=True)
    try:
        return _plan(recipe, ctx, r.engine, batch=r.batch is not None, learned=learned_limits(r.run))
    finally:
        ctx.journal.close()
        ctx.outputs.close()


def project(recipe: Recipe) -> list[StageProjection]:
    """Each stage's requests (expected, and the range) and tokens, from the recipe's dry run."""
    stages = []
    for plan in recipe.dry_run():
        low, high = plan.planned_range or (plan.planned, plan.planned)
        low, high = min(low, plan.planned), max(high, plan.planned)  # the plan's own figure is in it
        sent = plan.requests
        inputs = [estimate_input(q.model, q.messages, q.params).tokens for q in sent]
        stages.append(StageProjection(
            stage=plan.stage, requests=plan.planned, requests_low=low, requests_high=high,
            input_tokens=round(sum(inputs) / len(inputs) * plan.planned) if inputs else 0,
            max_output_tokens=round(sum(q.max_output_tokens for q in sent) / len(sent) * plan.planned) if sent else 0,
            expected_output_tokens=(None if plan.expected_output_tokens is None
                                    else plan.expected_output_tokens * plan.planned),
            counted=(f"the {len(sent)} rendered prompts" if len(sent) == plan.planned
                     else f"{len(sent)} of the {plan.planned} prompts, rendered as an even sample"),
            assumptions=tuple(plan.assumptions),
        ))
    return stages


def _plan(recipe: Recipe, ctx: Context, settings: EngineSettings, *, batch: bool, learned: Limits | None) -> DryRun:
    model = ctx.model
    stages = project(recipe)
    unprocessed = ctx.journal.unprocessed()
    est = estimator_name(model)
    lines = [
        "dry run: nothing is sent (the ledger and the run folder are not touched)",
        f"recipe {recipe.name}, model {model}, language {ctx.lang}, "
        f"{'structured output (json_schema)' if ctx.structured else 'text output, parsed'}"
        f"{', Batch API' if batch else ''}",
        f"examples to keep: {ctx.settings.n} ({ctx.outputs.kept} kept already, {ctx.need} to go)",
    ]
    if unprocessed:
        lines.append(f"{len(unprocessed)} planned requests of an earlier run are not processed yet: they are sent "
                     "first (free when the ledger has them done); not counted below")
    for s in stages:
        lines.append(f"stage {s.stage}: {s.requests} requests expected, between {s.requests_low} and "
                     f"{s.requests_high} (at the high and the low end of the yield)")
        lines.append(f"  input tokens: {s.input_tokens:,} (counted on {s.counted} by {est}, an estimate)")
        lines.append(f"  output tokens: at most {s.max_output_tokens:,} (max_tokens)"
                     + (f", expected ~{s.expected_output_tokens:,.0f}" if s.expected_output_tokens is not None
                        else ", expected: not known before the run"))
        lines += [f"  assumes: {a}" for a in s.assumptions]
    total_req = sum(s.requests for s in stages)
    total_low, total_high = sum(s.requests_low for s in stages), sum(s.requests_high for s in stages)
    total_in = sum(s.input_tokens for s in stages)
    total_out_max = sum(s.max_output_tokens for s in stages)
    expected_outs = [s.expected_output_tokens for s in stages]
    total_out_expected = None if None in expected_outs else sum(e or 0.0 for e in expected_outs)
    lines.append(f"total: {total_req} requests expected (between {total_low} and {total_high}), "
                 f"{total_in:,} input tokens, at most {total_out_max:,} output tokens")
    # The expected requests' tokens scaled to the high end: what the most requests would use.
    scale = total_high / total_req if total_req else 1.0

    prices = price_table_for(settings)
    price = prices.lookup(model)
    top = mid = None
    if price is None:
        lines.append(f"cost: unknown: no price for {model!r} (give --price-input/--price-output or --prices)")
    else:
        top = price.cost(Usage(input_tokens=round(total_in * scale), output_tokens=round(total_out_max * scale)),
                         batch=batch)
        mid = None if total_out_expected is None else price.cost(
            Usage(input_tokens=total_in, output_tokens=round(total_out_expected)), batch=batch)
        basis = f"{'batch ' if batch else ''}prices of {model} from {price.source}"
        cost_line = f"cost: at most {usd(top)} (the most requests, each to max_tokens)"
        if mid is not None:
            cost_line += f", expected ~{usd(mid)}"
        lines.append(f"{cost_line} ({basis}; cached-input discounts not counted)")
        if settings.max_cost is not None and top is not None and top > settings.max_cost:
            lines.append(f"  the worst case is over --max-cost {settings.max_cost}: "
                         "the run stops when the budget is spent")
    lines.append(f"prices: {prices.dated()}")
    if warning := prices.staleness_warning():
        lines.append(warning)
    per_request = (total_in + total_out_max) / total_req if total_req else 0.0
    lines.append(_duration_line(settings, (total_low, total_high), per_request, batch, learned))
    return DryRun(stages=tuple(stages), kept=ctx.outputs.kept, cost_max_usd=top, cost_expected_usd=mid,
                  text="\n".join(lines))


def _duration_line(settings: EngineSettings, requests: tuple[int, int], reserved_per_request: float, batch: bool,
                   learned: Limits | None) -> str:
    """The least time the limits allow for the fewest and for the most requests (each reserving
    its input + max_tokens against TPM, as OpenAI counts)."""
    if batch:
        return "duration: the Batch API finishes each stage within 24 hours (usually much sooner)"
    rpm = settings.rpm or (learned.rpm if learned else None)
    tpm = settings.tpm or (learned.tpm if learned else None)
    if not rpm and not tpm:
        return ("duration: not projected: no --rpm/--tpm given and no earlier run of this folder learned the "
                "limits (the server's x-ratelimit headers set the pace at run time)")

    def minutes(n: int) -> float:
        return max(n / rpm if rpm else 0.0, n * reserved_per_request / tpm if tpm else 0.0)

    given = [f"RPM {rpm:,}" if rpm else "", f"TPM {tpm:,}" if tpm else ""]
    source = ("given" if (settings.rpm or not rpm) and (settings.tpm or not tpm)
              else "learned from the server's headers in an earlier run of this folder")
    low, high = requests
    return (f"duration: at least {_minutes(minutes(low))} to {_minutes(minutes(high))} under the rate limits "
            f"({' and '.join(x for x in given if x)}, {source}; {reserved_per_request:,.0f} tokens reserved per "
            "request, input + max_tokens; latency and retries add to it)")


def _minutes(m: float) -> str:
    if m < 1:
        return f"{m * 60:.0f} s"
    if m < 120:
        return f"{m:.1f} min"
    return f"{m / 60:.1f} h"
