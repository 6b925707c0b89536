"""`--max-cost` for the Batch API: what was spent, plus the worst case of what is in open batches
and of what is about to be submitted (input estimate + max_tokens, at batch prices), must fit.

The spending counted is that of the budget's stages (`run_batch(budget_stages=...)`): a command's
`--max-cost` covers every stage of that command in the run folder, earlier runs included, and
nothing else (a `generate` budget does not pay for a `judge` run in the same folder).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from factory.batch.stats import usd
from factory.engine import ChatRequest
from factory.engine.pricing import PriceTable
from factory.engine.tokens import estimate_input, estimator_name


@dataclass(frozen=True)
class Budget:
    """`limit` dollars for `stages`, of which `spent` is spent."""

    limit: float
    spent: float
    stages: tuple[str, ...]

    def covers(self) -> str:
        return f"--max-cost {usd(self.limit)} (covering stage{'s' if len(self.stages) != 1 else ''} {', '.join(self.stages)})"


@dataclass(frozen=True)
class WorstCase:
    usd: float
    requests: int
    input_tokens: int  # estimated
    output_tokens: int  # max_tokens
    estimators: str

    def describe(self) -> str:
        return (f"{usd(self.usd)} ({self.requests} requests: ~{self.input_tokens} input tokens, estimated by "
                f"{self.estimators}, + {self.output_tokens} max_tokens, at batch prices)")


def worst_case(requests: Iterable[ChatRequest], prices: PriceTable) -> WorstCase:
    total = 0.0
    count = input_tokens = output_tokens = 0
    models: set[str] = set()
    for r in requests:
        estimate = estimate_input(r.model, r.messages, r.params).tokens
        total += prices.require(r.model).worst_case(estimate, r.max_output_tokens, batch=True)
        count += 1
        input_tokens += estimate
        output_tokens += r.max_output_tokens
        models.add(r.model)
    return WorstCase(total, count, input_tokens, output_tokens, ", ".join(estimator_name(m) for m in sorted(models)))


def over_budget(requests: Iterable[ChatRequest], running: Iterable[ChatRequest], *, budget: Budget,
                prices: PriceTable) -> str | None:
    """None when `requests` may be submitted: what `budget` has spent plus the worst case of
    `requests` and of the `running` ones (open batches, billed when they finish) fits. Otherwise
    what is over, by how much, and what to change."""
    counted = {r.key: r for r in running}
    counted.update({r.key: r for r in requests})
    worst = worst_case(counted.values(), prices)
    if budget.spent + worst.usd <= budget.limit:
        return None
    return (
        f"{budget.covers()} is too small for this batch: its worst case is {worst.describe()} "
        f"and {usd(budget.spent)} is already spent; raise --max-cost to at least {usd(budget.spent + worst.usd, up=True)}, "
        "lower max_tokens, or send fewer requests"
    )


def fit_budget(new: Sequence[ChatRequest], committed: Sequence[ChatRequest], *, budget: Budget,
               prices: PriceTable) -> tuple[int, str | None]:
    """How many of `new`, in order, may be submitted beside the `committed` ones (running, or
    bound to be submitted), and when not all of them: a message that says what is left and why.
    0 with a message: nothing fits (the committed ones alone are over, or not even one request)."""
    message = over_budget([], committed, budget=budget, prices=prices) if committed else None
    if message is not None:
        return 0, message
    left = budget.limit - budget.spent - worst_case(committed, prices).usd
    fits = 0
    for r in new:
        one = worst_case([r], prices).usd
        if one > left:
            break
        left -= one
        fits += 1
    if fits == len(new):
        return fits, None
    everything = worst_case([*committed, *new], prices)
    if fits == 0:
        one = worst_case([new[0]], prices)
        if one.usd > budget.limit:
            return 0, (f"{budget.covers()} is smaller than the worst case of one request, {one.describe()}, by "
                       f"{usd(one.usd - budget.limit)}: raise --max-cost to at least {usd(one.usd, up=True)} "
                       "or lower max_tokens")
        return 0, (f"{budget.covers()}: {usd(budget.spent)} is spent and what is left, {usd(max(0.0, left))}, is less than "
                   f"the worst case of one more request, {one.describe()}; raise --max-cost to at least "
                   f"{usd(budget.spent + everything.usd, up=True)} to send all {len(new)}")
    return fits, (f"submitted {fits} of {len(new)} requests: the other {len(new) - fits} do not fit {budget.covers()} "
                  f"({usd(budget.spent)} spent; the worst case of all of them is {everything.describe()}); "
                  f"raise --max-cost to at least {usd(budget.spent + everything.usd, up=True)} and rerun to send them")
