"""`--max-cost`: every piece of budget arithmetic (money is shown by factory.engine.money.usd).

A command's budget covers that command's stages in the run folder, earlier runs included, and nothing
else (a `generate` budget does not pay for a `judge` run in the same folder). Two paths spend it:

- online (engine.py): each attempt reserves its worst case (prompt estimate + every max_tokens
  output token, at the model's price) before it is sent and settles the actual cost after, so
  spent + reserved never exceeds the limit however many requests are in flight (`Budget`);
- the Batch API (batch/run.py): what was spent plus the worst case of what is in open batches and
  of what is about to be submitted, at batch prices, must fit (`fit_budget`, `over_budget`).

The dry run and the Batch API driver ask how many requests of a kind fit what is left
(`requests_that_fit`); the reports show the share used (`budget_use`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from factory.engine.money import usd
from factory.engine.pricing import PriceTable
from factory.engine.records import ChatRequest
from factory.engine.tokens import estimate_input, estimator_name


def budget_use(command: str, stages: Sequence[str], limit: float, spent: float | None) -> dict[str, Any]:
    """What a command's `--max-cost` covered and how much of it was spent, as the reports show it
    (`used_share` is None when a price is unknown, so the spend is)."""
    return {"command": command, "stages": list(stages), "max_cost_usd": float(limit), "spent_usd": spent,
            "used_share": None if spent is None else spent / float(limit)}


class Budget:
    """A hard cap of `limit` USD over `stages`. Online, `reserve` before sending (the worst case) and
    `settle` after (the actual): spent + reserved never exceeds the limit."""

    def __init__(self, limit: float, stages: Sequence[str] = (), *, spent: float = 0.0) -> None:
        self.limit = limit
        self.stages = tuple(stages)
        self.spent = spent
        self.reserved = 0.0
        self.waiting = 0  # requests waiting for in-flight ones to free room
        self._changed: anyio.Event | None = None

    @property
    def committed(self) -> float:
        return self.spent + self.reserved

    @property
    def left(self) -> float:
        return max(0.0, self.limit - self.committed)

    def covers(self) -> str:
        """'--max-cost $5.00 (covering stages questions, answers)', for messages."""
        if not self.stages:
            return f"--max-cost {usd(self.limit, exact=True)}"
        plural = "s" if len(self.stages) != 1 else ""
        return f"--max-cost {usd(self.limit, exact=True)} (covering stage{plural} {', '.join(self.stages)})"

    def add_prior(self, amount: float) -> None:
        """Money already spent (earlier runs of the same stages, from the ledger)."""
        self.spent += amount

    async def reserve(self, amount: float) -> bool:
        """Reserve `amount`; wait while in-flight requests may still free room. False: it cannot fit."""
        while True:
            if self.committed + amount <= self.limit:
                self.reserved += amount
                return True
            if self.reserved <= 1e-12:
                return False
            if self._changed is None:
                self._changed = anyio.Event()
            self.waiting += 1
            try:
                await self._changed.wait()
            finally:
                self.waiting -= 1

    def settle(self, reserved: float, spent: float) -> None:
        self.reserved = max(0.0, self.reserved - reserved)
        self.spent += spent
        if self._changed is not None:
            self._changed.set()
            self._changed = None


# ------------------------------------------------------------------------------------------------
# Worst cases (the Batch API path, the dry run)


@dataclass(frozen=True)
class WorstCase:
    usd: float
    requests: int
    input_tokens: int  # estimated
    output_tokens: int  # max_tokens
    estimators: str

    def describe(self) -> str:
        return (f"{usd(self.usd, exact=True)} ({self.requests} requests: ~{self.input_tokens} input tokens, estimated "
                f"by {self.estimators}, + {self.output_tokens} max_tokens, at batch prices)")


def worst_case(requests: Iterable[ChatRequest], prices: PriceTable, *, batch: bool = True) -> WorstCase:
    """Every request's prompt (estimated) and all of its max_tokens, at the model's price."""
    total = 0.0
    count = input_tokens = output_tokens = 0
    models: set[str] = set()
    for r in requests:
        estimate = estimate_input(r.model, r.messages, r.params).tokens
        total += prices.require(r.model).worst_case(estimate, r.max_output_tokens, batch=batch)
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
        f"and {usd(budget.spent, exact=True)} is already spent; raise --max-cost to at least "
        f"{usd(budget.spent + worst.usd, up=True)}, lower max_tokens, or send fewer requests"
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
    spent = usd(budget.spent, exact=True)
    if fits == 0:
        one = worst_case([new[0]], prices)
        if one.usd > budget.limit:
            return 0, (f"{budget.covers()} is smaller than the worst case of one request, {one.describe()}, by "
                       f"{usd(one.usd - budget.limit, exact=True)}: raise --max-cost to at least "
                       f"{usd(one.usd, up=True)} or lower max_tokens")
        return 0, (f"{budget.covers()}: {spent} is spent and what is left, {usd(max(0.0, left), exact=True)}, is "
                   f"less than the worst case of one more request, {one.describe()}; raise --max-cost to at least "
                   f"{usd(budget.spent + everything.usd, up=True)} to send all {len(new)}")
    return fits, (f"submitted {fits} of {len(new)} requests: the other {len(new) - fits} do not fit {budget.covers()} "
                  f"({spent} spent; the worst case of all of them is {everything.describe()}); raise --max-cost to "
                  f"at least {usd(budget.spent + everything.usd, up=True)} and rerun to send them")


@dataclass(frozen=True)
class Fit:
    """How many requests of one kind fit what is left of a budget."""

    requests: int | None  # None: no limit (no budget, or a request costs nothing)
    too_small: str | None  # why not even one request could ever fit, and what to change


def requests_that_fit(budget: Budget | None, sample: ChatRequest | None, prices: PriceTable, *,
                      margin: float = 1.2, batch: bool = True) -> Fit:
    """How many requests like `sample` fit what is left of `budget`, each at its worst case (its
    prompt estimate times `margin`, since prompts vary, and every max_tokens output token)."""
    price = prices.lookup(sample.model) if sample is not None else None
    if budget is None or sample is None or price is None:
        return Fit(None, None)  # an unpriced model under a budget is refused elsewhere, with its own message
    tokens = int(estimate_input(sample.model, sample.messages, sample.params).tokens * margin)
    worst = price.worst_case(tokens, sample.max_output_tokens, batch=batch)
    if worst > budget.limit:
        return Fit(0, f"{budget.covers()} is smaller than the worst case of one {sample.stage} request, "
                      f"{usd(worst, exact=True)} (~{tokens} input tokens + {sample.max_output_tokens} max_tokens"
                      f"{' at batch prices' if batch else ''}), by {usd(worst - budget.limit, exact=True)}: raise "
                      f"--max-cost to at least {usd(worst, up=True)} or lower max_tokens")
    return Fit(max(0, math.floor(budget.left / worst)) if worst > 0 else None, None)


__all__ = ["Budget", "Fit", "WorstCase", "budget_use", "fit_budget", "over_budget", "requests_that_fit", "worst_case"]
