"""`--max-cost` for the Batch API: what was spent, plus the worst case of what is in open batches
and of what is about to be submitted (input estimate + max_tokens, at batch prices), must fit."""

from __future__ import annotations

from collections.abc import Iterable

from factory.batch.stats import usd
from factory.engine import ChatRequest
from factory.engine.pricing import PriceTable
from factory.engine.tokens import estimate_input, estimator_name


def over_budget(requests: Iterable[ChatRequest], running: Iterable[ChatRequest], *, limit: float, spent: float,
                prices: PriceTable) -> str | None:
    """None when `requests` may be submitted: `spent` plus the worst case of `requests` and of the
    `running` ones (open batches, billed when they finish) fits `limit`. Otherwise what is over,
    by how much, and what to change."""
    counted = {r.key: r for r in running}
    counted.update({r.key: r for r in requests})
    worst = 0.0
    input_tokens = output_tokens = 0
    for r in counted.values():
        estimate = estimate_input(r.model, r.messages, r.params).tokens
        worst += prices.require(r.model).worst_case(estimate, r.max_output_tokens, batch=True)
        input_tokens += estimate
        output_tokens += r.max_output_tokens
    if spent + worst <= limit:
        return None
    models = sorted({r.model for r in counted.values()})
    return (
        f"--max-cost {usd(limit)} is too small for this batch: its worst case is {usd(worst)} "
        f"({len(counted)} requests: ~{input_tokens} input tokens, estimated by "
        f"{', '.join(estimator_name(m) for m in models)}, + {output_tokens} max_tokens, at batch prices) "
        f"and {usd(spent)} is already spent; raise --max-cost to at least {usd(spent + worst, up=True)}, "
        "lower max_tokens, or send fewer requests"
    )
