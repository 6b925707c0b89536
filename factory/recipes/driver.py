"""Running a recipe: online through the engine, or through the Batch API, stopping when `--n`
examples are kept, the budget ends, or the yield collapses.

Online (`run_online`): one engine run pulls requests lazily from `_requests`, which first sends
again what the journal planned and no earlier run processed (done ones come back from the ledger
unpaid), then asks the recipe for one more request whenever the engine has a free slot and the
examples still needed are not already expected from what is in flight. When the recipe has
nothing to ask for yet (topics: answers wait for questions) it waits for the next result.
Results are handled one at a time, in the engine's delivery order.

Batch API (`run_batches`): round after round, each stage of the recipe is planned as a list, sent
with `run_batch`, and handled before the next stage is planned (answers need their questions).
With `--batch-wait no` the first stage left running on the server ends the command; a rerun
attaches to its batches and goes on.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import openai

from factory.batch import BatchBudgetError, BatchSettings, BatchStats, run_batch
from factory.engine.budget import Budget, Fit, requests_that_fit
from factory.engine import ChatRequest, ChatResult, Engine, RunStats
from factory.engine.ledger import Ledger
from factory.engine.pricing import price_table_for
from factory.engine.progress import Goal
from factory.recipes.base import REASON_FAILED, Context, Outcome, Recipe
from factory.recipes.journal import JournalEntry
from factory.engine.settings import EngineSettings
from schemas import Usage

log = logging.getLogger(__name__)


@dataclass
class DriveReport:
    """What one invocation did (the summary's material)."""

    mode: str = "online"
    requests: int = 0  # results handled (cached ones included)
    cached: int = 0  # given back from the ledger: paid by an earlier run
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    usage: Usage = field(default_factory=Usage)  # paid in this invocation
    cost_usd: float | None = 0.0
    pending: int = 0  # Batch API: requests still in batches on the server
    engine_stopped: str | None = None  # the engine's or the batch path's stop reason

    def add_cost(self, cost: float | None) -> None:
        self.cost_usd = None if cost is None or self.cost_usd is None else self.cost_usd + cost


class Driver:
    def __init__(self, recipe: Recipe, ctx: Context, ledger: Ledger | None = None) -> None:
        self.recipe = recipe
        self.ctx = ctx
        self.ledger = ledger
        self.report = DriveReport()
        self._failed_now: set[int] = set()  # not sent again in this invocation

    # -- handling one result (both paths) -------------------------------------------------

    def finish(self, result: ChatResult) -> None:
        ctx = self.ctx
        entry: JournalEntry = result.request.meta["entry"]
        ctx.active.pop(entry.index, None)
        r = self.report
        r.requests += 1
        if result.cached:
            r.cached += 1
        else:
            r.usage = r.usage + result.call.usage
            r.add_cost(result.call.cost_usd)
        if result.ok:
            outcome = self.recipe.handle(entry, result)
            ctx.journal.mark_processed(entry, result.request.key, kept=outcome.kept)
        else:
            # Not marked processed: a rerun sends it again. Not again in this invocation.
            self._failed_now.add(entry.index)
            r.failed += 1
            r.failures[(result.call.error or "unknown error")[:200]] += 1
            outcome = Outcome(candidates=1, reasons=Counter({REASON_FAILED: 1}))
        y = ctx.stage_yield(entry.stage)
        y.requests += 1
        y.candidates += outcome.candidates
        y.kept += outcome.kept
        y.counts.append(outcome.kept)
        if outcome.candidates:  # a request processed again after a crash may have nothing new
            ctx.window.add(outcome.kept, outcome.candidates, outcome.reasons)
            if ctx.stop_reason is None and (why := ctx.window.collapsed()):
                ctx.stop_reason = why
        ctx.notify()

    def _unprocessed(self, stage: str | None = None) -> list[JournalEntry]:
        """Planned by an earlier run (or this one) and not processed: sent again, in plan order."""
        return [e for e in self.ctx.journal.unprocessed(stage)
                if e.index not in self._failed_now and e.stage in self.recipe.stages]

    # -- online -------------------------------------------------------------------------------

    async def run_online(self, engine: Engine, total: int | None = None) -> RunStats:
        self.ctx.changed = anyio.Event()
        stats = await engine.run(self._requests(), self.finish, total=total, goal=self.goal)
        self.report.engine_stopped = stats.stopped_reason
        return stats

    def goal(self) -> Goal:
        """For the live line: examples kept against --n, and this run's share (its yield)."""
        out = self.ctx.outputs
        return Goal(done=out.kept, target=self.ctx.settings.n, done_now=out.kept_now)

    async def _requests(self) -> AsyncIterator[ChatRequest]:
        ctx = self.ctx
        for entry in self._unprocessed():
            request = self.recipe.request(entry)
            if ctx.need <= 0 and (self.ledger is None or self.ledger.get_done(request.key) is None):
                continue  # --n is reached: only what is paid for already (done in the ledger) is used
            ctx.active[entry.index] = entry
            yield request
        while ctx.stop_reason is None and ctx.need > 0:
            changed = ctx.changed
            entry = await self.recipe.next_request()
            if ctx.stop_reason is not None:
                return
            if entry is not None:
                ctx.active[entry.index] = entry
                yield self.recipe.request(entry)
                continue
            if not ctx.active:
                return  # nothing in flight and nothing to ask for
            assert changed is not None
            await changed.wait()

    # -- Batch API ----------------------------------------------------------------------------

    async def run_batches(self, client: openai.AsyncOpenAI, *, ledger: Ledger, settings: EngineSettings,
                          batch: BatchSettings) -> None:
        ctx, report = self.ctx, self.report
        report.mode = "batch"
        while True:
            progressed = False
            for stage in self.recipe.stages:
                entries = self._unprocessed(stage)
                if ctx.need <= 0:  # --n is reached: collect what is paid for, submit nothing new
                    entries = [e for e in entries if (row := ledger.get(self.recipe.request(e).key)) is not None
                               and row.status in ("done", "pending")]
                if not entries and ctx.need > 0 and ctx.stop_reason is None:
                    fit = self._budget_fit(stage, ledger, settings)
                    if fit.too_small is not None:
                        ctx.stop_reason = f"budget too small: {fit.too_small}"
                        return
                    limit = fit.requests
                    if limit == 0:
                        ctx.stop_reason = "budget: the worst case of one more batch request does not fit --max-cost"
                        return
                    entries = await self.recipe.plan_batch(stage, limit)
                if not entries:
                    continue
                for e in entries:
                    ctx.active[e.index] = e
                try:
                    stats: BatchStats = await run_batch([self.recipe.request(e) for e in entries], self.finish,
                                                        ledger=ledger, settings=settings, client=client, batch=batch,
                                                        budget_stages=self.recipe.stages)
                except BatchBudgetError as e:
                    ctx.stop_reason = f"budget too small: {e}" if e.too_small else f"budget: {e}"
                    return
                progressed = True
                if stats.pending:
                    report.pending = stats.pending
                    return  # --batch-wait no: a rerun collects
                if stats.stopped_reason:
                    report.engine_stopped = stats.stopped_reason
                    ctx.stop_reason = ctx.stop_reason or stats.stopped_reason
                    return
                if ctx.stop_reason is not None:
                    return
            if ctx.need <= 0 or ctx.stop_reason is not None or not progressed:
                return

    def _budget_fit(self, stage: str, ledger: Ledger, settings: EngineSettings) -> Fit:
        """How many requests of `stage` a new batch may hold so that its worst case fits what is left
        of --max-cost, which covers the recipe's stages (None: no budget)."""
        if settings.max_cost is None:
            return Fit(None, None)
        budget = Budget(settings.max_cost, self.recipe.stages,
                        spent=sum(ledger.spent_usd(s) for s in self.recipe.stages))
        return requests_that_fit(budget, self.recipe.sample_request(stage), price_table_for(settings))


def describe_failures(report: DriveReport, limit: int = 3) -> list[str]:
    return [f"{count}x {error}" for error, count in report.failures.most_common(limit)]


def usage_totals(ledger: Ledger, stages: tuple[str, ...]) -> tuple[Usage, float | None, int]:
    """Usage and cost of the run folder's requests of these stages (every invocation), and how many."""
    usage, cost, count = Usage(), 0.0, 0
    unknown = False
    for t in ledger.totals_by_stage_model():
        if t.stage not in stages:
            continue
        usage = usage + t.usage
        count += t.requests
        if t.cost_usd is None:
            unknown = True
        else:
            cost += t.cost_usd
    return usage, (None if unknown else cost), count


__all__: list[Any] = ["DriveReport", "Driver", "describe_failures", "usage_totals"]
