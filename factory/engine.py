"""The async LLM engine: many chat requests through one OpenAI-compatible API, each paid for once.

    engine = Engine(settings, Ledger.for_run("runs/demo"))
    stats = await engine.run(requests, on_result, total=len(requests))

How a run flows (read `Engine.run` top to bottom):

1. The dispatcher waits for a free concurrency slot, THEN pulls the next request from the
   caller (lazily: a caller can stop producing once it has enough, or produce from results).
   A request already `done` in the ledger is not sent: its stored answer comes back as cached.
2. A worker per request: reserve the worst-case cost (budget), reserve input estimate +
   max_tokens (rate limiter), send, settle both from the answer's `usage`. Failed attempts are
   retried by `RetryPolicy` (tenacity); a 429 pauses everyone and halves the concurrency.
3. One deliverer task writes finished results to the ledger (many per transaction) and only
   then hands them to `on_result`, one at a time: a crash never loses a result the caller saw.

Stopping: a fatal API error (bad key, unknown model), the budget, or Ctrl-C stop the dispatcher
and let in-flight requests finish (Ctrl-C: for `drain_timeout_s` at most); nothing further is
sent. Fatal errors are raised from `run` after the drain; the others end it with
`RunStats.stopped_reason` set.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import inspect
import json
import logging
import signal
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, fields
from typing import Any

import anyio
import httpx
import openai
from anyio.abc import ObjectReceiveStream, ObjectSendStream, TaskGroup

from factory.completion import Reply, read_completion
from factory.errors import (
    FactoryError,
    FatalAPIError,
    RequestError,
    SettingsError,
    register_secret,
)
from factory.ledger import Ledger
from factory.limiter import AdaptiveConcurrency, Budget, RateLimiter, wait_hint
from factory.pricing import ModelPrice, price_table_for
from factory.progress import ProgressLine, RateMeter, Snapshot
from factory.retry import (
    DEFAULT_RATE_LIMIT_PAUSE_S,
    MAX_RETRY_AFTER_S,
    AttemptFailure,
    MalformedResponse,
    RetryPolicy,
    classify,
)
from factory.settings import EngineSettings, resolve_api_key
from factory.tokens import estimate_input
from schemas import LLMCall, Usage

log = logging.getLogger(__name__)

# Results written to the ledger in one transaction, at most (under load; one when idle).
WRITE_BATCH = 256
# The first request goes alone (a bad key costs one request); the rest follow once it is
# answered, or after this long without an answer.
PROBE_WAIT_S = 10.0
# This many requests in a row failing the same way (a 400 with the same message, or no
# connection at all) means every request would: stop the run.
REPEATS_BEFORE_FATAL = 3



# --------------------------------------------------------------------------------------------
# The public records


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to make. `key` (the ledger's) hashes model, messages and params;
    `meta` is not hashed and rides along to the result. Identical requests are one request:
    to sample the same prompt several times, give each a different `params["seed"]`."""

    stage: str  # "self-instruct", "questions", "answers", "judge", ...
    model: str
    messages: list[dict[str, str]]
    params: dict[str, Any]  # max_tokens (required), temperature, response_format, seed, ...
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    _key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.stage or not self.model:
            raise RequestError("a ChatRequest needs a stage and a model")
        if not self.messages or not all(isinstance(m, dict) and m.get("role") for m in self.messages):
            raise RequestError("ChatRequest.messages must be a non-empty list of {'role': ..., 'content': ...}")
        limit = self.params.get("max_tokens", self.params.get("max_completion_tokens"))
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise RequestError(
                "ChatRequest.params needs max_tokens (or max_completion_tokens) as a positive integer: "
                "the rate limiter and the budget reserve it before sending"
            )
        if self.params.get("stream"):
            raise RequestError("the engine does not stream: drop params['stream']")
        if self.params.get("n", 1) != 1:
            raise RequestError("n > 1 is not supported: send one request per sample (vary params['seed'])")
        try:
            canonical = json.dumps(
                [self.model, self.messages, self.params], sort_keys=True, ensure_ascii=False, separators=(",", ":")
            )
        except TypeError as e:
            raise RequestError(f"ChatRequest messages and params must be plain JSON values: {e}") from None
        object.__setattr__(self, "_key", hashlib.sha256(canonical.encode()).hexdigest())

    @property
    def key(self) -> str:
        """sha256 of the canonical JSON of (model, messages, params)."""
        return self._key

    @property
    def max_output_tokens(self) -> int:
        return int(self.params.get("max_tokens", self.params.get("max_completion_tokens")))


@dataclass
class ChatResult:
    request: ChatRequest
    call: LLMCall  # status, content, finish_reason, usage, cost_usd, latency_s, attempts, error
    cached: bool  # True: from the ledger (an earlier run paid for it); nothing was paid now

    @property
    def ok(self) -> bool:
        return self.call.status == "done"

    @property
    def content(self) -> str | None:
        return self.call.content


@dataclass
class RunStats:
    requests: int = 0  # pulled from the caller
    done: int = 0  # answered in this run
    failed: int = 0  # gave up (after retries, or not retryable)
    cached: int = 0  # done in an earlier run: given back from the ledger
    duplicates: int = 0  # the same key twice in this run: sent once
    sent: int = 0  # HTTP attempts
    retries: int = 0
    rate_limited: int = 0  # 429 answers
    usage: Usage = field(default_factory=Usage)  # of this run's answers (cached ones excluded)
    cost_usd: float | None = 0.0  # paid in this run; None when a model's price is unknown
    stopped_reason: str | None = None  # None (all done), "budget", "interrupted", "fatal"
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (for a report's summary.json)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["usage"] = self.usage.model_dump()
        return out

    def summary(self) -> str:
        cost = "unknown" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        stopped = f"; stopped: {self.stopped_reason}" if self.stopped_reason else ""
        return (
            f"{self.done} done, {self.failed} failed, {self.cached} cached, {self.duplicates} duplicate; "
            f"{self.sent} HTTP attempts ({self.retries} retries, {self.rate_limited} rate-limited); "
            f"{self.usage.input_tokens} input + {self.usage.output_tokens} output tokens; {cost}; "
            f"{self.elapsed_s:.1f}s{stopped}"
        )


OnResult = Callable[[ChatResult], "None | Awaitable[None]"]


# --------------------------------------------------------------------------------------------
# Per-request and per-run bookkeeping


class _Abandoned(Exception):
    """The run is stopping: this request is not sent again (recorded as failed if it was sent before)."""


@dataclass
class _Plan:
    """What one request reserves before each attempt, and how it is sent."""

    input_estimate: int
    reserve_tokens: int  # input estimate + max_tokens: what the rate limit counts
    price: ModelPrice | None
    worst_cost: float  # USD if every token is paid at the full price (0 without a budget)
    kwargs: dict[str, Any]


@dataclass
class _Tally:
    """What all attempts of one request used and cost."""

    attempts: int = 0
    rate_limited: int = 0  # attempts answered 429
    usage: Usage = field(default_factory=Usage)
    cost: float | None = 0.0

    def bill(self, usage: Usage | None, price: ModelPrice | None) -> float | None:
        """Add one billed answer; returns its cost (None: unknown)."""
        if usage is None:  # an answer without `usage`: it was paid, we cannot say how much
            self.cost = None
            return None
        self.usage = self.usage + usage
        cost = price.cost(usage) if price else (0.0 if usage.input_tokens + usage.output_tokens == 0 else None)
        self.cost = None if cost is None or self.cost is None else self.cost + cost
        return cost


class _BudgetHold:
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


class _Run:
    """The mutable state of one `Engine.run`."""

    def __init__(self, total: int | None, budget: Budget | None) -> None:
        self.total = total
        self.budget = budget
        self.stats = RunStats()
        self.started = time.monotonic()
        self.stop_reason: str | None = None
        self.error: FactoryError | None = None
        self.stopped = anyio.Event()
        self.first_answer = anyio.Event()
        self.pull_scope: anyio.CancelScope | None = None
        self.workers_scope: anyio.CancelScope | None = None
        self.keys: set[str] = set()
        self.resuming = True  # the ledger had done requests when the run began
        self.stages: set[str] = set()
        self.models: set[str] = set()
        self.meter = RateMeter()
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
        if failure.kind == "bad_request":
            signature: tuple[Any, ...] = (failure.status, failure.code, str(failure))
        elif failure.kind in ("connection", "timeout"):
            signature = (failure.kind,)
        else:
            self._repeat, self._repeats = None, 0
            return None
        self._repeats = self._repeats + 1 if signature == self._repeat else 1
        self._repeat = signature
        if self._repeats < REPEATS_BEFORE_FATAL:
            return None
        if failure.kind == "bad_request":
            return FatalAPIError(
                f"{self._repeats} requests in a row were refused the same way ({failure.describe()}): "
                "fix the request parameters", status=failure.status, code=failure.code,
            )
        return FatalAPIError(
            f"{self._repeats} requests in a row failed every attempt ({failure.describe()}): "
            f"check that {base_url} is reachable, or raise --timeout"
        )

    def no_repeat(self) -> None:
        self._repeat, self._repeats = None, 0

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


# --------------------------------------------------------------------------------------------
# The engine


class Engine:
    """Sends `ChatRequest`s through an OpenAI-compatible API: rate-limited, retried, budgeted,
    and recorded in `ledger`. One engine may `run` several times (its limiter state carries over)."""

    def __init__(
        self,
        settings: EngineSettings,
        ledger: Ledger,
        *,
        api_key: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        progress: bool = True,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.prices = price_table_for(settings)
        if settings.max_cost is not None and settings.model:
            self.prices.require(settings.model)  # refuse to start: a budget needs a price
        self._api_key = api_key_for(settings, api_key)
        self._http_client = http_client
        self._progress = progress and settings.progress
        self.rate = RateLimiter(settings.rpm, settings.tpm)
        self.concurrency = AdaptiveConcurrency(settings.max_concurrency, start=1)
        self.retry = RetryPolicy(settings.max_attempts)
        self._run: _Run | None = None
        self._running = False

    async def run(
        self,
        requests: Iterable[ChatRequest] | AsyncIterable[ChatRequest],
        on_result: OnResult,
        total: int | None = None,
    ) -> RunStats:
        """Complete every request (each once), calling `on_result` for each result, serially.

        Raises FatalAPIError (or PriceUnknownError) after in-flight requests drained when the API
        refuses in a way every request would repeat. Requests not sent because the run stopped
        are not given to `on_result`.
        """
        if self._running:
            raise RuntimeError("this engine is already running: one run at a time (or use another Engine)")
        self._running = True
        try:
            return await self._run_to_end(requests, on_result, total)
        except BaseExceptionGroup as group:
            # anyio's task groups wrap what a task raised (on_result, the request iterator, a
            # bug): hand the caller the exception itself when there is just one.
            raise _sole_exception(group) from None
        finally:
            self._running = False

    async def _run_to_end(
        self, requests: Iterable[ChatRequest] | AsyncIterable[ChatRequest], on_result: OnResult, total: int | None
    ) -> RunStats:
        budget = Budget(self.settings.max_cost) if self.settings.max_cost is not None else None
        run = self._run = _Run(total, budget)
        # Nothing done yet: no request can be in the ledger but this run's own (which `run.keys`
        # catches), so the per-request lookup is skipped.
        run.resuming = self.ledger.has_done()
        send, receive = anyio.create_memory_object_stream[ChatResult](self.settings.max_concurrency)
        async with self._client() as client, anyio.create_task_group() as helpers:
            helpers.start_soon(self._end_probe, run)
            helpers.start_soon(self._watch_signals, run)
            if self._progress:
                helpers.start_soon(self._show_progress, run)
            async with anyio.create_task_group() as core:
                core.start_soon(self._deliver, receive, on_result, run)
                async with send, anyio.create_task_group() as workers:
                    run.workers_scope = workers.cancel_scope
                    await self._dispatch(requests, client, workers, send, run)
            helpers.cancel_scope.cancel()
        run.stats.stopped_reason = run.stop_reason
        run.stats.elapsed_s = time.monotonic() - run.started
        log.info("run finished: %s", run.stats.summary())
        if run.error is not None:
            run.error.stats = run.stats
            raise run.error
        return run.stats

    # --- 1. pulling requests ----------------------------------------------------------------

    async def _dispatch(
        self,
        requests: Iterable[ChatRequest] | AsyncIterable[ChatRequest],
        client: openai.AsyncOpenAI,
        workers: TaskGroup,
        results: ObjectSendStream[ChatResult],
        run: _Run,
    ) -> None:
        source = _aiter(requests)
        try:
            while not run.stopping:
                holder = object()  # the slot's owner: taken here, given back by the worker
                request = await self._next_request(source, holder, run)
                if request is None:
                    break
                if run.stopping or not await self._admit(request, holder, results, run):
                    self.concurrency.release(holder)
                    continue
                workers.start_soon(self._work, request, holder, client, results, run)
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()

    async def _next_request(self, source: AsyncIterator[ChatRequest], holder: object, run: _Run) -> ChatRequest | None:
        """Wait for a free slot, then pull one request (holding the slot). None: no more requests,
        or the run is stopping (`run.stop` cancels this wait)."""
        acquired = False
        with anyio.CancelScope() as scope:
            run.pull_scope = scope
            if run.stopping:
                return None
            await self.concurrency.acquire(holder)
            acquired = True
            try:
                return await source.__anext__()
            except StopAsyncIteration:
                pass
        if acquired:
            self.concurrency.release(holder)
        return None

    async def _admit(self, request: ChatRequest, holder: object, results: ObjectSendStream[ChatResult], run: _Run) -> bool:
        """True: send it. False: a duplicate, done in the ledger (given back as cached), or refused."""
        run.stats.requests += 1
        key = request.key
        if key in run.keys:
            run.stats.duplicates += 1
            return False
        run.keys.add(key)
        stored = self.ledger.get_done(key) if run.resuming else None
        if stored is not None:
            await results.send(ChatResult(request, stored, cached=True))
            return False
        if request.stage not in run.stages:
            run.stages.add(request.stage)
            if run.budget is not None:  # the budget covers earlier runs of the same stage
                run.budget.add_prior(self.ledger.spent_usd(request.stage))
        if run.budget is not None and request.model not in run.models:
            run.models.add(request.model)
            try:
                self.prices.require(request.model)
            except FactoryError as e:
                run.stop("fatal", e)
                return False
        return True

    # --- 2. one request: attempts, retries, accounting --------------------------------------

    async def _work(
        self,
        request: ChatRequest,
        holder: object,
        client: openai.AsyncOpenAI,
        results: ObjectSendStream[ChatResult],
        run: _Run,
    ) -> None:
        try:
            call = await self._complete(request, client, run)
            if call is not None:
                await results.send(ChatResult(request, call, cached=False))
        finally:
            # Released only after the result is handed on, so in-flight + undelivered results
            # never exceed the concurrency cap (memory stays bounded however slow on_result is).
            self.concurrency.release(holder)

    async def _complete(self, request: ChatRequest, client: openai.AsyncOpenAI, run: _Run) -> LLMCall | None:
        """The result of `request` after as many attempts as it takes. None: not sent (stopping)."""
        plan = self._plan(request, run)
        tally = _Tally()
        label = f"request {request.key[:12]} ({request.stage})"
        try:
            call = await self.retry.call(lambda: self._attempt(request, plan, client, run, tally), label, run.sleep)
        except (_Abandoned, FatalAPIError) as stop:
            if isinstance(stop, FatalAPIError):
                run.stop("fatal", stop)
            if tally.attempts == 0:
                return None  # never sent: nothing to record
            # Sent, and maybe billed, before the run stopped: recorded as failed with its cost.
            why = str(stop) if isinstance(stop, FatalAPIError) else f"not retried: the run stopped ({run.stop_reason})"
            return self._failed(request, tally, why)
        except AttemptFailure as failure:
            gave_up = f" (gave up after {tally.attempts} attempts)" if failure.retryable else ""
            log.debug("%s: failed: %s%s", label, failure.describe(), gave_up)
            if (fatal := run.repeated_failure(failure, self.settings.base_url)) is not None:
                run.stop("fatal", fatal)
            return self._failed(request, tally, failure.describe() + gave_up)
        run.no_repeat()
        log.debug("%s: done after %d attempt(s), %.2fs", label, call.attempts, call.latency_s or 0.0)
        return call

    @staticmethod
    def _failed(request: ChatRequest, tally: _Tally, error: str) -> LLMCall:
        return LLMCall(
            key=request.key, stage=request.stage, model=request.model, status="failed",
            attempts=tally.attempts, rate_limited=tally.rate_limited, usage=tally.usage, cost_usd=tally.cost,
            error=error,
        )

    def _plan(self, request: ChatRequest, run: _Run) -> _Plan:
        estimate = estimate_input(request.model, request.messages, request.params)
        price = self.prices.lookup(request.model)
        worst = 0.0
        if run.budget is not None and price is not None:
            worst = price.worst_case(estimate.tokens, request.max_output_tokens)
        return _Plan(estimate.tokens, estimate.tokens + request.max_output_tokens, price, worst, _sdk_arguments(request))

    async def _attempt(
        self, request: ChatRequest, plan: _Plan, client: openai.AsyncOpenAI, run: _Run, tally: _Tally
    ) -> LLMCall:
        """One HTTP attempt, with its reservations taken before and settled after."""
        if run.stopping:
            raise _Abandoned
        if run.budget is not None and not await run.budget.reserve(plan.worst_cost):
            run.stop("budget")
            raise _Abandoned
        hold = _BudgetHold(run.budget, plan.worst_cost)
        try:
            await self.rate.acquire(plan.reserve_tokens)
            if run.stopping:
                self.rate.refund(plan.reserve_tokens)
                raise _Abandoned
            tally.attempts += 1
            run.stats.sent += 1
            if tally.attempts > 1:
                run.stats.retries += 1
            hold.sent = True
            started = time.monotonic()
            try:
                with anyio.fail_after(self.settings.timeout_s):
                    raw = await client.chat.completions.with_raw_response.create(**plan.kwargs)
                reply = _read_reply(raw)
            except Exception as exc:  # never a cancellation: that is a BaseException
                failure = classify(exc, model=request.model, base_url=self.settings.base_url)
                if isinstance(failure, AttemptFailure):
                    hold.settle(self._after_failure(failure, plan, run, tally))
                raise failure from exc
            latency = time.monotonic() - started
            run.first_answer.set()
            self.rate.observe(raw.headers)
            if reply.usage is not None:
                self.rate.settle(plan.reserve_tokens, reply.usage.input_tokens + reply.usage.output_tokens)
            self.concurrency.on_success()
            hold.settle(tally.bill(reply.usage, plan.price))
            return LLMCall(
                key=request.key, stage=request.stage, model=request.model, status="done",
                attempts=tally.attempts, rate_limited=tally.rate_limited, usage=tally.usage, cost_usd=tally.cost,
                latency_s=latency,
                finish_reason=reply.finish_reason, content=reply.content, error=reply.error,
            )
        finally:
            hold.close()

    def _after_failure(self, failure: AttemptFailure, plan: _Plan, run: _Run, tally: _Tally) -> float | None:
        """Limiter bookkeeping for a failed attempt; returns what it may have cost (None: the worst case)."""
        if failure.status is not None:
            run.first_answer.set()  # the server answers: the probe is over
        if failure.headers is not None:
            self.rate.observe(failure.headers)
        if failure.kind == "rate_limited":
            run.stats.rate_limited += 1
            tally.rate_limited += 1
            if failure.retry_after is None and failure.headers is not None:
                failure.retry_after = wait_hint(failure.headers, plan.reserve_tokens)  # from x-ratelimit-reset-*
            pause = failure.retry_after if failure.retry_after is not None else DEFAULT_RATE_LIMIT_PAUSE_S
            pause = min(pause, MAX_RETRY_AFTER_S)
            self.rate.refund(plan.reserve_tokens)  # a 429 is not counted by the server
            self.rate.pause(pause)
            self.concurrency.on_rate_limited(pause)
            return 0.0
        if failure.usage is not None:  # an answer we could not use, but it was billed
            used = failure.usage.input_tokens + failure.usage.output_tokens
            self.rate.settle(plan.reserve_tokens, used)
            return tally.bill(failure.usage, plan.price)
        if failure.maybe_billed:  # no answer, or one without usage: assume the worst
            return None
        return 0.0  # an error status: refused before any tokens were generated

    # --- 3. delivering results ---------------------------------------------------------------

    async def _deliver(self, results: ObjectReceiveStream[ChatResult], on_result: OnResult, run: _Run) -> None:
        """Ledger first (one transaction per batch), then `on_result`, one result at a time."""
        async with results:
            async for first in results:
                batch = [first]
                while len(batch) < WRITE_BATCH:
                    try:
                        batch.append(results.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                fresh = [r.call for r in batch if not r.cached]
                if fresh:
                    self.ledger.record(fresh)
                for result in batch:
                    run.count(result)
                    outcome = on_result(result)
                    if inspect.isawaitable(outcome):
                        await outcome

    # --- helpers: client, probe, signals, progress ---------------------------------------------

    def _client(self) -> AbstractAsyncContextManager[openai.AsyncOpenAI]:
        return openai_client(self.settings, api_key=self._api_key, http_client=self._http_client)

    async def _end_probe(self, run: _Run) -> None:
        with anyio.move_on_after(PROBE_WAIT_S):
            await run.first_answer.wait()
        self.concurrency.open()

    async def _watch_signals(self, run: _Run) -> None:
        """Ctrl-C (or SIGTERM): stop sending, let in-flight requests finish for `drain_timeout_s`,
        then abandon them. A second Ctrl-C abandons them at once."""
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be installed from the main thread
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if not run.stopping:
                    run.stop("interrupted")
                    grace = self.settings.drain_timeout_s
                    log.warning(
                        "%s: finishing %d in-flight requests (up to %.0fs); press Ctrl-C again to abandon them",
                        signal.Signals(signum).name, self.concurrency.in_flight, grace,
                    )
                    if run.workers_scope is not None:
                        run.workers_scope.deadline = anyio.current_time() + grace
                elif run.workers_scope is not None:
                    log.warning("abandoning in-flight requests")
                    run.workers_scope.cancel()

    async def _show_progress(self, run: _Run) -> None:
        line = ProgressLine()
        try:
            while True:
                await anyio.sleep(line.interval_s)
                line.show(self.snapshot())
        finally:
            line.close(self.snapshot())

    def snapshot(self) -> Snapshot:
        """The current run's progress figures (for the progress line, or a caller's own display)."""
        run = self._run
        if run is None:
            raise RuntimeError("no run has started")
        s = run.stats
        req_per_min, tok_per_min = run.meter.per_minute()
        return Snapshot(
            done=s.done, failed=s.failed, cached=s.cached, total=run.total,
            elapsed_s=time.monotonic() - run.started,
            req_per_min=req_per_min, tok_per_min=tok_per_min,
            rpm_limit=self.rate.rpm, tpm_limit=self.rate.tpm,
            spent_usd=s.cost_usd, rate_limited=s.rate_limited, retries=s.retries,
            in_flight=self.concurrency.in_flight, concurrency=self.concurrency.limit,
            stopping=run.stop_reason,
        )


# --------------------------------------------------------------------------------------------
# Reading an answer


def _read_reply(raw: Any) -> Reply:
    """The first choice and the usage of a raw SDK response; MalformedResponse if it is not a completion."""
    try:
        body = raw.http_response.json()
    except ValueError as e:  # cut short, or not JSON at all
        raise MalformedResponse(f"the body is not JSON ({e})") from e
    return read_completion(body)


def api_key_for(settings: EngineSettings, api_key: str | None = None) -> str:
    """The key to send: `api_key`, else OPENAI_API_KEY from the environment (or `.env`); registered as a
    secret so no log line shows it. None at all is an error only for OpenAI itself."""
    key = api_key if api_key is not None else resolve_api_key()
    if not key and settings.is_openai:
        raise SettingsError(
            "no API key: set OPENAI_API_KEY in the environment (or in a .env file), "
            "or point --base-url at a local server"
        )
    register_secret(key)
    return key or "no-key"  # a local server needs none; the SDK wants a non-empty one


@asynccontextmanager
async def openai_client(
    settings: EngineSettings, *, api_key: str, http_client: httpx.AsyncClient | None = None
) -> AsyncIterator[openai.AsyncOpenAI]:
    """The SDK client for `settings.base_url`: the SDK's own retries off (ours are logged), every call
    bounded by `settings.timeout_s`, on `http_client` or else the fastest HTTP client at hand (closed after)."""
    owned = http_client is None
    http = http_client or _default_http_client(settings.timeout_s)
    client = openai.AsyncOpenAI(
        api_key=api_key, base_url=settings.base_url, max_retries=0, http_client=http, timeout=settings.timeout_s
    )
    try:
        yield client
    finally:
        if owned:
            with anyio.move_on_after(5.0, shield=True):
                await http.aclose()


def _default_http_client(timeout_s: float) -> Any:
    """One of the SDK's own HTTP clients. With aiohttp installed (`openai[aiohttp]`) and on asyncio,
    its aiohttp-backed one: about half the CPU per request of its httpx2 one, which is what lets
    one process drive hundreds of requests per second. Either way the concurrency cap bounds the
    connections, and `timeout_s` bounds every wait."""
    if importlib.util.find_spec("aiohttp") is not None and _on_asyncio():
        return openai.DefaultAioHttpClient(timeout=timeout_s)
    return openai.DefaultAsyncHttpxClient(timeout=timeout_s)


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()  # aiohttp runs on asyncio only (not on trio)
        return True
    except RuntimeError:
        return False


def http_client_name() -> str:
    """Which HTTP client an engine without an explicit `http_client` uses (for benchmarks, logs)."""
    return "aiohttp" if importlib.util.find_spec("aiohttp") is not None else "httpx2"


def _sdk_arguments(request: ChatRequest) -> dict[str, Any]:
    """Keyword arguments of `chat.completions.create` for `request`.

    The messages and parameters travel in `extra_body`, which the SDK merges into the JSON body
    as it is: they are plain JSON already (ChatRequest checks), and the SDK's typed transform of
    `messages` would cost about a third of the client's CPU per request. The body on the wire
    is the same (a test holds it).
    """
    return {"model": request.model, "messages": [], "extra_body": {"messages": request.messages, **request.params}}


def _sole_exception(group: BaseExceptionGroup) -> BaseException:
    """The one non-cancellation exception inside (nested) groups, else the group itself."""
    cancelled = anyio.get_cancelled_exc_class()
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        elif not isinstance(exc, cancelled):
            leaves.append(exc)
    return leaves[0] if len(leaves) == 1 else group


async def _aiter(requests: Iterable[ChatRequest] | AsyncIterable[ChatRequest]) -> AsyncIterator[ChatRequest]:
    if isinstance(requests, AsyncIterable):
        async for r in requests:
            yield r
    else:
        for r in requests:
            yield r
