"""The grading rounds: what each round sends, what the replies make of each item, and the
moment an item's judgment is final and written. A reply without a readable verdict is asked
again in the next round (a new request: the prompt's nonce changes with the attempt)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TextIO

import httpx
from pydantic import BaseModel

from factory.batch import BatchSettings, batch_client, run_batch
from factory.engine import ChatRequest, ChatResult, Engine, EngineSettings, Ledger, usd
from judge.grading.inputs import Todo
from judge.grading.settings import STAGE, GradeError
from judge.grading.parse import Unparsed
from judge.grading.plan import Outcome
from judge.grading.prompts import GradingPrompt, PromptError
from schemas import JsonlWriter


class Gradable(Protocol):
    """What the rounds grade: a question turn (plan.GradingItem) or a training example (judge.curation)."""

    @property
    def orders(self) -> int: ...
    @property
    def judge_model(self) -> str: ...
    @property
    def key(self) -> Any: ...
    def prompt(self, order: int = 0, attempt: int = 0) -> GradingPrompt: ...
    def parse(self, reply: str | None) -> Any: ...
    def final(self, outcomes: Sequence[Any], *, request_keys: Sequence[str], cost_usd: float | None,
              attempts: int) -> BaseModel: ...


@dataclass
class _Item:
    item: Gradable
    first_attempt: int
    outcomes: list[Outcome | None]
    keys: list[str] = field(default_factory=list)  # every request, in the order asked (round, then order)
    costs: dict[str, float | None] = field(default_factory=dict)  # of each answered request
    waiting: int = 0  # requests of the current round not answered yet
    rounds: int = 0  # attempt numbers used in this run
    state: Literal["open", "written", "failed", "unfinished"] = "open"
    error: str = ""

    def needs(self) -> list[int]:
        """The orders still without a readable verdict."""
        return [o for o, out in enumerate(self.outcomes) if out is None or isinstance(out, Unparsed)]


@dataclass
class GradeCounts:
    planned: int = 0
    already_scored: int = 0
    scored: int = 0
    unscored: int = 0
    failed: int = 0  # a request failed at the API: left ungraded, a rerun tries again
    unfinished: int = 0  # not answered: the run stopped (budget, Ctrl-C) or batches still run
    requests: int = 0  # grading requests this run asked for (cached ones included)
    cached: int = 0  # answered from the ledger: not paid again
    cost_usd: float | None = 0.0  # paid in this run; None: a price is unknown
    stopped_reason: str | None = None  # "budget", "interrupted", "batches pending"
    failures: Counter[str] = field(default_factory=Counter)


class Grading:
    """The state of one grading run: builds each round's requests, reads each result (serially,
    from the engine's `on_result`), and writes an item's judgment the moment it is final."""

    def __init__(self, todo: Todo, writer: JsonlWriter, *, structured: bool, retries: int, max_tokens: int,
                 stage: str = STAGE) -> None:
        self.items = [_Item(i, todo.first_attempt[i.key], [None] * i.orders) for i in todo.items]
        self.stage = stage
        self.writer = writer
        self.structured = structured
        self.retries = retries
        self.max_tokens = max_tokens
        self.counts = GradeCounts()
        self._slots: dict[str, list[tuple[_Item, int]]] = {}
        self._round = 0

    def round_requests(self, round_: int) -> list[ChatRequest]:
        """The requests of attempt round `round_`: every open item's orders without a verdict."""
        self._round = round_
        self._slots = {}
        requests: list[ChatRequest] = []
        for it in self.items:
            if it.state != "open":
                continue
            it.rounds = round_ + 1
            for order in it.needs():
                prompt = it.item.prompt(order, it.first_attempt + round_)
                request = ChatRequest(self.stage, it.item.judge_model, prompt.messages,
                                      prompt.params(structured=self.structured, max_tokens=self.max_tokens))
                slots = self._slots.setdefault(request.key, [])
                if not slots:
                    requests.append(request)
                slots.append((it, order))  # the same request twice (a pair of equal answers) is sent once
                if request.key not in it.keys:
                    it.keys.append(request.key)
                it.waiting += 1
        self.counts.requests += len(requests)
        return requests

    def on_result(self, result: ChatResult) -> None:
        if result.cached:
            self.counts.cached += 1
        for it, order in self._slots.pop(result.request.key, []):
            it.costs[result.request.key] = result.call.cost_usd
            it.waiting -= 1
            if result.ok and result.content is not None:
                it.outcomes[order] = it.item.parse(result.content)
            elif not it.error:
                it.error = result.call.error or "no text in the reply"
            if it.waiting == 0:
                self._settle(it)

    def _settle(self, it: _Item) -> None:
        """An item whose requests of this round are all answered: final, or open for the next round."""
        if it.error:
            it.state = "failed"
            self.counts.failed += 1
            self.counts.failures[it.error[:120]] += 1
        elif not it.needs() or self._round >= self.retries:
            self._write(it)

    def _write(self, it: _Item) -> None:
        outcomes = [o if o is not None else Unparsed("not asked", "") for o in it.outcomes]
        cost: float | None = 0.0
        for c in it.costs.values():
            cost = None if c is None or cost is None else cost + c
        # The attempt numbers used so far: a rerun grading an unscored item starts after them.
        record = it.item.final(outcomes, request_keys=it.keys, cost_usd=cost, attempts=it.first_attempt + it.rounds)
        self.writer.append(record)
        it.state = "written"
        if getattr(record, "status", None) == "scored":
            self.counts.scored += 1
        else:
            self.counts.unscored += 1

    def end_round(self) -> None:
        """Items with requests the run never answered (it stopped) are left for a rerun."""
        for it in self.items:
            if it.state == "open" and it.waiting > 0:
                it.state = "unfinished"
                it.waiting = 0
        self._slots = {}

    def finish(self) -> GradeCounts:
        self.counts.unfinished = sum(1 for it in self.items if it.state in ("open", "unfinished"))
        return self.counts

    def add_cost(self, cost: float | None) -> None:
        if cost is None or self.counts.cost_usd is None:
            self.counts.cost_usd = None
        else:
            self.counts.cost_usd += cost


def stop_lines(c: GradeCounts, noun: str) -> list[str]:
    """What a summary says of failed and unfinished items (`noun`: "items", "examples"), and what was spent."""
    lines = []
    if c.failed:
        top = "; ".join(f"{reason} (x{n})" for reason, n in c.failures.most_common(2))
        lines.append(f"{c.failed} {noun} not graded: a request failed ({top}); rerun the same command to retry")
    if c.unfinished:
        why = {"budget": "the --max-cost budget is spent", "interrupted": "interrupted",
               "batches pending": "their batches are still running on the server"}.get(c.stopped_reason or "",
                                                                                      "the run stopped")
        lines.append(f"{c.unfinished} {noun} not finished: {why}; rerun the same command to continue")
    spent = ("an unknown amount (a price is missing: give --price-input/--price-output)" if c.cost_usd is None
             else usd(c.cost_usd))
    lines.append(f"spent {spent} on {c.requests} requests ({c.cached} answered from the ledger, not paid again)")
    return lines


def check_prompts(items: Sequence[Gradable], first_attempt: dict[Any, int]) -> None:
    """Build every first prompt now, so a prompt that cannot be built fails before any request."""
    for item in items:
        for order in range(item.orders):
            try:
                item.prompt(order, first_attempt[item.key])
            except PromptError as e:
                raise GradeError(str(e)) from None


async def grade_online(grading: Grading, engine: Engine) -> None:
    for round_ in range(grading.retries + 1):
        requests = grading.round_requests(round_)
        if not requests:
            break
        stats = await engine.run(requests, grading.on_result, total=len(requests))
        grading.add_cost(stats.cost_usd)
        grading.end_round()
        if stats.stopped_reason:
            grading.counts.stopped_reason = stats.stopped_reason
            break


async def grade_batch(grading: Grading, ledger: Ledger, settings: EngineSettings, batch: BatchSettings,
                       http_client: httpx.AsyncClient | None, api_key: str | None, err: TextIO) -> None:
    async with batch_client(settings, api_key=api_key, http_client=http_client) as client:
        for round_ in range(grading.retries + 1):
            requests = grading.round_requests(round_)
            if not requests:
                break
            stats = await run_batch(requests, grading.on_result, ledger=ledger, settings=settings, client=client,
                                    batch=batch, progress=err if settings.progress else None)
            grading.add_cost(stats.cost_usd)
            grading.end_round()
            if stats.pending:
                grading.counts.stopped_reason = "batches pending"
                break
            if stats.stopped_reason:
                grading.counts.stopped_reason = stats.stopped_reason
                break
