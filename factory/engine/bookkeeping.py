"""Per-request and per-run bookkeeping of `Engine.run`: what an attempt reserves, what all attempts
of a request cost, and the mutable state of one run (its stop reason, counters and rate meter)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from factory.engine.budget import Budget
from factory.engine.pricing import ModelPrice
from factory.engine.progress import Goal, RateMeter
from factory.engine.records import ChatResult, RunStats
from factory.engine.retry import AttemptFailure
from factory.engine.writer import LedgerWriter
from factory.errors import FactoryError, FatalAPIError
from schemas import Usage

log = logging.getLogger("factory.engine")

# This many requests in a row failing every attempt without an answer (no connection, no reply
# in time) means every request would: stop the run.
REPEATS_BEFORE_FATAL = 3
# The server's same error, word for word, on this many attempts in a row means it gives every
# request that answer (a validation error dressed as a 500, a wrong model name, a refused
# parameter): not transient. A request stops being retried there; a second request answered the
# same stops the run. (A transient error differs from one answer to the next: OpenAI's 500s name
# their request id.)
SAME_ANSWER_ATTEMPTS = 3
# Answers that are passing by their nature, however alike: rate limits, timeouts, conflicts, and a
# gateway's or an overloaded server's (502, 503, 504).
_PASSING = frozenset({408, 409, 429, 502, 503, 504})


class RepeatWatch:
    """The last error answer the server gave, and how many attempts (of which requests) got it in a row."""

    def __init__(self) -> None:
        self.signature: tuple[Any, ...] | None = None
        self.attempts = 0
        self.requests: dict[str, int] = {}  # request key -> its attempts with this answer

    def failed(self, failure: AttemptFailure, key: str) -> str | None:
        """Note a failed attempt. Returns why the run must stop (the same answer on another request
        once one had it SAME_ANSWER_ATTEMPTS times), else None; makes the failure final when this
        request has had the answer that often."""
        if failure.status is None or failure.status in _PASSING:
            return None  # no answer to compare (connections, timeouts), or one that says to wait and retry
        signature = (failure.status, failure.code, str(failure))
        if signature != self.signature:
            self.signature, self.attempts, self.requests = signature, 0, {}
        self.attempts += 1
        self.requests[key] = self.requests.get(key, 0) + 1
        if self.requests[key] >= SAME_ANSWER_ATTEMPTS and failure.retryable:
            failure.retryable, failure.repeated = False, True  # another attempt would get it again
        if self.attempts >= SAME_ANSWER_ATTEMPTS and len(self.requests) >= 2:
            return (f"the server gave {self.attempts} attempts of {len(self.requests)} requests in a row the same "
                    f"answer, {failure.describe()}: it is not a passing fault, so the run stops; change what it "
                    "names (the model, a request parameter, the server's settings) and rerun the same command "
                    "(what was kept and paid stays)")
        return None

    def answered(self) -> None:
        self.signature, self.attempts, self.requests = None, 0, {}


class Abandoned(Exception):
    """The run is stopping: this request is not sent again (recorded as failed if it was sent before)."""


@dataclass
class Plan:
    """What one request reserves before each attempt, and how it is sent."""

    input_estimate: int
    reserve_tokens: int  # input estimate + max_tokens: what the rate limit counts
    price: ModelPrice | None
    worst_cost: float  # USD if every token is paid at the full price (0 without a budget)
    body: dict[str, Any]  # the JSON body sent
    worst_known: float | None = None  # the same whether or not there is a budget; None: no price


@dataclass
class Tally:
    """What all attempts of one request used and cost."""

    attempts: int = 0
    rate_limited: int = 0  # attempts answered 429
    open_attempts: list[int] = field(default_factory=list)  # ledger ids of attempts that may be billed
    usage: Usage = field(default_factory=Usage)
    cost: float | None = 0.0
    waited: float = 0.0  # seconds before and between attempts: limiter, budget, retry back-off

    def bill(self, usage: Usage | None, price: ModelPrice | None) -> float | None:
        """Add one billed answer; returns its cost (None: unknown)."""
        if usage is None:  # an answer without `usage`: it was paid, we cannot say how much
            self.cost = None
            return None
        self.usage = self.usage + usage
        cost = price.cost(usage) if price else (0.0 if usage.input_tokens + usage.output_tokens == 0 else None)
        self.cost = None if cost is None or self.cost is None else self.cost + cost
        return cost


class BudgetHold:
    """The worst case reserved for one attempt; settled exactly once. Left unsettled (cancelled,
    or an answer of unknown cost) after the request went out, the worst case is charged."""

    def __init__(self, budget: Budget | None, amount: float) -> None:
        self.budget, self.amount = budget, amount
        self.sent = False
        self._open = budget is not None

    def settle(self, spent: float | None) -> None:
        if self._open and self.budget is not None:
            self.budget.settle(self.amount, self.amount if spent is None else spent)
            self._open = False

    def close(self) -> None:
        self.settle(self.amount if self.sent else 0.0)


class RunState:
    """The mutable state of one `Engine.run`."""

    def __init__(self, total: int | None, budget: Budget | None, writer: LedgerWriter) -> None:
        self.total = total
        self.budget = budget
        self.writer = writer  # every write of the run to the ledger goes through it
        self.stats = RunStats()
        self.started = time.monotonic()
        self.stop_reason: str | None = None
        self.error: FactoryError | None = None
        self.stopped = anyio.Event()
        self.first_answer = anyio.Event()  # set by the first successful answer: the probe is over
        self.answered_error = False  # the server has answered with an error (it is up, but refusing)
        self.watch = RepeatWatch()
        self.pull_scope: anyio.CancelScope | None = None
        self.workers_scope: anyio.CancelScope | None = None
        self.keys: set[str] = set()
        self.run_id = uuid.uuid4().hex  # marks this run's attempts in the ledger
        self.open_attempts: dict[str, list[int]] = {}  # request key -> attempts its result settles
        self.resuming = True  # the ledger had done requests when the run began
        self.stages: set[str] = set()
        self.models: set[str] = set()
        self.meter = RateMeter()
        self.goal: Callable[[], Goal] | None = None  # what the progress line counts toward, if not requests
        self._repeat: tuple[Any, ...] | None = None
        self._repeats = 0

    @property
    def stopping(self) -> bool:
        return self.stop_reason is not None

    def stop(self, reason: str, error: FactoryError | None = None) -> None:
        """Send nothing more. The first reason (and error) wins."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.error = error
            log.info("stopping the run (%s)%s", reason, f": {error}" if error else "")
            self.stopped.set()
            if self.pull_scope is not None:
                self.pull_scope.cancel()

    async def sleep(self, seconds: float) -> None:
        """A retry's wait, cut short when the run stops."""
        with anyio.move_on_after(seconds):
            await self.stopped.wait()

    def repeated_failure(self, failure: AttemptFailure, base_url: str) -> FatalAPIError | None:
        """A FatalAPIError when this final failure is the REPEATS_BEFORE_FATAL-th in a row alike."""
        if failure.kind in ("connection", "timeout", "unreachable") and failure.status is None:
            signature: tuple[Any, ...] = (failure.kind,)
        else:
            self._repeat, self._repeats = None, 0
            return None
        self._repeats = self._repeats + 1 if signature == self._repeat else 1
        self._repeat = signature
        if self._repeats < REPEATS_BEFORE_FATAL:
            return None
        return FatalAPIError(
            f"{self._repeats} requests in a row failed every attempt ({failure.describe()}): "
            f"check that {base_url} is reachable, or raise --timeout"
        )

    def no_repeat(self) -> None:
        self._repeat, self._repeats = None, 0
        self.watch.answered()

    def count(self, result: ChatResult) -> None:
        s = self.stats
        if result.cached:
            s.cached += 1
            return
        if result.ok:
            s.done += 1
        else:
            s.failed += 1
        u = result.call.usage
        s.usage = s.usage + u
        if result.call.cost_usd is None:
            if u.input_tokens + u.output_tokens > 0 or result.ok:
                s.cost_usd = None
        elif s.cost_usd is not None:
            s.cost_usd += result.call.cost_usd
        self.meter.add(u.input_tokens + u.output_tokens)
