"""The async LLM engine: many chat requests through one OpenAI-compatible API, each paid for once.

    engine = Engine(settings, Ledger.for_run("runs/demo"))
    stats = await engine.run(requests, on_result, total=len(requests))

How a run flows (read `Engine.run` top to bottom):

1. The dispatcher waits for a free concurrency slot, THEN pulls the next request from the
   caller (lazily: a caller can stop producing once it has enough, or produce from results).
   A request already `done` in the ledger is not sent: its stored answer comes back as cached.
2. A worker per request: reserve the worst-case cost (budget), reserve input estimate +
   max_tokens (rate limiter), commit the attempt to the ledger, send, settle both from the
   answer's `usage`. Failed attempts are retried by `RetryPolicy` (tenacity); a 429 pauses
   everyone and halves the concurrency.
3. One deliverer task writes finished results to the ledger and only then hands them to
   `on_result`, one at a time: a crash never loses a result the caller saw. Attempts and results
   share commits (`LedgerWriter`: group commit from a worker thread).

Stopping: a fatal API error (bad key, unknown model), the budget, or Ctrl-C stop the dispatcher
and let in-flight requests finish (Ctrl-C: for `drain_timeout_s` at most); nothing further is
sent. Fatal errors are raised from `run` after the drain; the others end it with
`RunStats.stopped_reason` set.
"""

from __future__ import annotations

import inspect
import logging
import signal
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager

import anyio
import httpx
from anyio.abc import ObjectReceiveStream, ObjectSendStream, TaskGroup

from factory.engine.bookkeeping import Abandoned, BudgetHold, Plan, RunState, Tally
from factory.engine.client import Endpoints, api_key_for, open_endpoints, post_chat, read_reply, request_body
from factory.engine.ledger import AttemptRow, Ledger, Limits
from factory.engine.budget import Budget
from factory.engine.limiter import QUEUE_LATENCY_FLOOR_S, AdaptiveConcurrency, RateLimiter, wait_hint
from factory.engine.pricing import price_table_for
from factory.engine.progress import Goal, Snapshot, progress_display
from factory.engine.records import ChatRequest, ChatResult, OnResult, RunStats
from factory.engine.retry import (
    DEFAULT_RATE_LIMIT_PAUSE_S,
    MAX_RETRY_AFTER_S,
    AttemptFailure,
    RetryPolicy,
    classify,
)
from factory.engine.settings import EngineSettings
from factory.engine.structured import Mode, wire_form
from factory.engine.tokens import estimate_input
from factory.engine.writer import LedgerWriter
from factory.errors import FactoryError, FatalAPIError
from schemas import LLMCall

log = logging.getLogger("factory.engine")

# A result on its way to the deliverer, with the concurrency slot it holds (None: a cached one holds none).
Delivery = tuple[ChatResult, object | None]
# Results written to the ledger in one transaction, at most (under load; one when idle).
WRITE_BATCH = 256
# The first request goes alone (a bad key costs one request); the rest follow once it is
# answered, or after this long without an answer.
PROBE_WAIT_S = 10.0


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
        self.rate = RateLimiter(settings.rpm, settings.tpm, accounting=settings.tpm_accounting)
        self.concurrency = AdaptiveConcurrency(settings.max_concurrency, start=1)
        self.retry = RetryPolicy(settings.max_attempts)
        # How the server takes a json_schema `response_format` (structured.choose_structured finds out).
        self.structured_mode: Mode = "json_schema"
        self._run: RunState | None = None
        self._running = False

    async def run(
        self,
        requests: Iterable[ChatRequest] | AsyncIterable[ChatRequest],
        on_result: OnResult,
        total: int | None = None,
        goal: Callable[[], Goal] | None = None,
        *,
        quiet: bool = False,
    ) -> RunStats:
        """Complete every request (each once), calling `on_result` for each result, serially.
        `total` (requests) or `goal` (what the caller counts toward, asked for at each refresh)
        sets what the progress line projects; `quiet`: no progress line (a probe).

        Raises FatalAPIError (or PriceUnknownError) after in-flight requests drained when the API
        refuses in a way every request would repeat. Requests not sent because the run stopped
        are not given to `on_result`.
        """
        if self._running:
            raise RuntimeError("this engine is already running: one run at a time (or use another Engine)")
        self._running = True
        try:
            return await self._run_to_end(requests, on_result, total, goal, quiet)
        except BaseExceptionGroup as group:
            # anyio's task groups wrap what a task raised (on_result, the request iterator, a
            # bug): hand the caller the exception itself when there is just one.
            raise _sole_exception(group) from None
        finally:
            self._running = False

    async def _run_to_end(
        self, requests: Iterable[ChatRequest] | AsyncIterable[ChatRequest], on_result: OnResult, total: int | None,
        goal: Callable[[], Goal] | None, quiet: bool = False,
    ) -> RunStats:
        budget = Budget(self.settings.max_cost) if self.settings.max_cost is not None else None
        run = self._run = RunState(total, budget, LedgerWriter(self.ledger))
        run.goal = goal
        # Nothing done yet: no request can be in the ledger but this run's own (which `run.keys`
        # catches), so the per-request lookup is skipped.
        run.resuming = self.ledger.has_done()
        send, receive = anyio.create_memory_object_stream[Delivery](self.settings.max_concurrency)
        try:
            async with self._endpoints() as clients, anyio.create_task_group() as helpers:
                helpers.start_soon(self._end_probe, run)
                helpers.start_soon(self._watch_signals, run)
                if self._progress and not quiet:
                    helpers.start_soon(self._show_progress, run)
                async with anyio.create_task_group() as core:
                    core.start_soon(self._deliver, receive, on_result, run)
                    async with send, anyio.create_task_group() as workers:
                        run.workers_scope = workers.cancel_scope
                        await self._dispatch(requests, clients, workers, send, run)
                helpers.cancel_scope.cancel()
        finally:
            run.writer.close()  # commits the attempts closed since the last commit
        if learned := self.rate.learned:  # for a later dry run of this folder
            self.ledger.save_limits(Limits(learned.get("requests"), learned.get("tokens")))
        run.stats.stopped_reason = run.stop_reason
        run.stats.elapsed_s = time.monotonic() - run.started
        run.stats.endpoints = clients.throughput(run.stats.elapsed_s)
        log.info("run finished: %s", run.stats.summary())
        if run.error is not None:
            run.error.stats = run.stats
            raise run.error
        return run.stats

    # --- 1. pulling requests ----------------------------------------------------------------

    async def _dispatch(
        self,
        requests: Iterable[ChatRequest] | AsyncIterable[ChatRequest],
        clients: Endpoints,
        workers: TaskGroup,
        results: ObjectSendStream[Delivery],
        run: RunState,
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
                workers.start_soon(self._work, request, holder, clients, results, run)
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()

    async def _next_request(self, source: AsyncIterator[ChatRequest], holder: object, run: RunState) -> ChatRequest | None:
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

    async def _admit(self, request: ChatRequest, holder: object, results: ObjectSendStream[Delivery], run: RunState) -> bool:
        """True: send it. False: a duplicate, done in the ledger (given back as cached), or refused."""
        run.stats.requests += 1
        key = request.key
        if key in run.keys:
            run.stats.duplicates += 1
            return False
        run.keys.add(key)
        stored = self.ledger.get_done(key) if run.resuming else None
        if stored is not None:
            await results.send((ChatResult(request, stored, cached=True), None))
            return False
        if request.stage not in run.stages:
            run.stages.add(request.stage)
            if run.budget is not None:  # the budget covers earlier runs of the same stage
                # ... and, at their worst case, their attempts that were in flight when they died.
                _, possibly_billed = self.ledger.unsettled(request.stage, other_than=run.run_id)
                run.budget.add_prior(self.ledger.spent_usd(request.stage) + possibly_billed)
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
        clients: Endpoints,
        results: ObjectSendStream[Delivery],
        run: RunState,
    ) -> None:
        handed_on = False
        try:
            call = await self._complete(request, clients, run)
            if call is not None:
                await results.send((ChatResult(request, call, cached=False), holder))
                handed_on = True
        finally:
            # A result handed on keeps its slot until it is delivered (the deliverer releases it),
            # so in-flight + undelivered results never exceed the concurrency cap: memory stays
            # bounded however slow on_result is, and a lazy caller is pulled from only as needed.
            if not handed_on:
                self.concurrency.release(holder)

    async def _complete(self, request: ChatRequest, clients: Endpoints, run: RunState) -> LLMCall | None:
        """The result of `request` after as many attempts as it takes. None: not sent (stopping)."""
        plan = self._plan(request, run)
        tally = Tally()
        label = f"request {request.key[:12]} ({request.stage})"
        policy = self.retry if "max_attempts" not in request.meta else RetryPolicy(int(request.meta["max_attempts"]))
        try:
            call = await policy.call(lambda: self._attempt(request, plan, clients, run, tally), label,
                                         lambda seconds: self._back_off(seconds, run, tally))
        except (Abandoned, FatalAPIError) as stop:
            if isinstance(stop, FatalAPIError):
                run.stop("fatal", stop)
            if tally.attempts == 0:
                return None  # never sent: nothing to record
            # Sent, and maybe billed, before the run stopped: recorded as failed with its cost.
            why = str(stop) if isinstance(stop, FatalAPIError) else f"not retried: the run stopped ({run.stop_reason})"
            return self._failed(request, tally, why, run)
        except AttemptFailure as failure:
            gave_up = (f" (gave up after {tally.attempts} attempts)" if failure.retryable
                       else f" (gave up after {tally.attempts} attempts: the same answer each time)" if failure.repeated
                       else "")
            log.debug("%s: failed: %s%s", label, failure.describe(), gave_up)
            if (fatal := run.repeated_failure(failure, self.settings.base_url)) is not None:
                run.stop("fatal", fatal)
            return self._failed(request, tally, failure.describe() + gave_up, run)
        run.no_repeat()
        log.debug("%s: done after %d attempt(s), %.2fs", label, call.attempts, call.latency_s or 0.0)
        if tally.open_attempts:
            run.open_attempts[request.key] = tally.open_attempts
        return call

    @staticmethod
    def _failed(request: ChatRequest, tally: Tally, error: str, run: RunState) -> LLMCall:
        if tally.open_attempts:
            run.open_attempts[request.key] = tally.open_attempts
        return LLMCall(
            key=request.key, stage=request.stage, model=request.model, status="failed",
            attempts=tally.attempts, rate_limited=tally.rate_limited, usage=tally.usage, cost_usd=tally.cost,
            wait_s=tally.waited, error=error,
        )

    def _plan(self, request: ChatRequest, run: RunState) -> Plan:
        estimate = estimate_input(request.model, request.messages, request.params)
        price = self.prices.lookup(request.model)
        worst = None if price is None else price.worst_case(estimate.tokens, request.max_output_tokens)
        budgeted = worst if run.budget is not None and worst is not None else 0.0
        body = request_body(request)
        if "response_format" in body:  # in the form this server takes (factory.engine.structured)
            body["response_format"] = wire_form(body["response_format"], self.structured_mode)
        return Plan(estimate.tokens, estimate.tokens + request.max_output_tokens, price, budgeted, body, worst)

    async def _attempt(
        self, request: ChatRequest, plan: Plan, clients: Endpoints, run: RunState, tally: Tally
    ) -> LLMCall:
        """One HTTP attempt, with its reservations taken before and settled after."""
        if run.stopping:
            raise Abandoned
        waiting_since = time.monotonic()
        if run.budget is not None and not await run.budget.reserve(plan.worst_cost):
            run.stop("budget")
            raise Abandoned
        hold = BudgetHold(run.budget, plan.worst_cost)
        try:
            await self.rate.acquire(plan.reserve_tokens)
            tally.waited += time.monotonic() - waiting_since
            if run.stopping:
                self.rate.refund(plan.reserve_tokens)
                raise Abandoned
            # On disk before it goes: if this process dies before the outcome is recorded, later
            # runs count the attempt as possibly billed.
            attempt_id = await run.writer.open_attempt(
                AttemptRow(run.run_id, request.key, request.stage, request.model, plan.worst_known))
            if run.stopping:  # stopped while the attempt was being written: it does not go
                run.writer.close_later([attempt_id])
                self.rate.refund(plan.reserve_tokens)
                raise Abandoned
            tally.open_attempts.append(attempt_id)
            tally.attempts += 1
            run.stats.sent += 1
            if tally.attempts > 1:
                run.stats.retries += 1
            hold.sent = True
            started = time.monotonic()
            endpoint = clients.pick()
            endpoint.in_flight += 1
            try:
                with anyio.fail_after(self.settings.timeout_s):
                    raw = await post_chat(endpoint.client, plan.body)
                reply = read_reply(raw)
            except Exception as exc:  # never a cancellation: that is a BaseException
                failure = classify(exc, model=request.model, base_url=endpoint.url)
                if isinstance(failure, AttemptFailure):
                    if (why := run.watch.failed(failure, request.key)) is not None:
                        run.stop("fatal", FatalAPIError(why, status=failure.status, code=failure.code))
                    cost = self._after_failure(failure, plan, run, tally)
                    hold.settle(cost)
                    if cost == 0.0 and failure.usage is None:  # known not billed: nothing to count later
                        run.writer.close_later([tally.open_attempts.pop()])
                    if failure.kind == "unreachable" and not run.first_answer.is_set():
                        # The server never answered this run: every request would fail the same way.
                        raise FatalAPIError(str(failure)) from exc
                raise failure from exc
            finally:
                endpoint.in_flight -= 1
            latency = time.monotonic() - started
            endpoint.done += 1
            endpoint.output_tokens += reply.usage.output_tokens if reply.usage else 0
            self.rate.observe(raw.headers)
            if not run.first_answer.is_set():
                if self.rate.unlimited:
                    self.concurrency.follow_queue()  # before the probe opens the cap: a local server's queue
                else:
                    self.concurrency.limits_seen()
            run.first_answer.set()
            if reply.usage is not None:
                u = reply.usage
                self.rate.settle(plan.reserve_tokens, self.rate.counted(u.input_tokens, u.output_tokens, request.max_output_tokens))
            # The cap held the pace and the limits have room: let one more request in flight.
            self.concurrency.on_success(room=self.concurrency.full and self.rate.has_room(plan.reserve_tokens)
                                        and not (run.budget is not None and run.budget.waiting),
                                        seconds_per_token=max(latency, QUEUE_LATENCY_FLOOR_S)
                                        / max(1, reply.usage.output_tokens if reply.usage else 1))
            hold.settle(tally.bill(reply.usage, plan.price))
            return LLMCall(
                key=request.key, stage=request.stage, model=request.model, status="done",
                attempts=tally.attempts, rate_limited=tally.rate_limited, usage=tally.usage, cost_usd=tally.cost,
                latency_s=latency, wait_s=tally.waited,
                finish_reason=reply.finish_reason, content=reply.content, error=reply.error,
            )
        finally:
            hold.close()

    @staticmethod
    async def _back_off(seconds: float, run: RunState, tally: Tally) -> None:
        """A retry's wait (cut short when the run stops), counted as the request's waiting."""
        since = time.monotonic()
        await run.sleep(seconds)
        tally.waited += time.monotonic() - since

    def _after_failure(self, failure: AttemptFailure, plan: Plan, run: RunState, tally: Tally) -> float | None:
        """Limiter bookkeeping for a failed attempt; returns what it may have cost (None: the worst case)."""
        if failure.status is not None:
            run.answered_error = True  # the server is up; the probe waits for an answer it can use
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
            u = failure.usage
            max_output = plan.reserve_tokens - plan.input_estimate
            self.rate.settle(plan.reserve_tokens, self.rate.counted(u.input_tokens, u.output_tokens, max_output))
            return tally.bill(failure.usage, plan.price)
        if failure.maybe_billed:  # no answer, or one without usage: assume the worst
            return None
        return 0.0  # an error status: refused before any tokens were generated

    # --- 3. delivering results ---------------------------------------------------------------

    async def _deliver(self, results: ObjectReceiveStream[Delivery], on_result: OnResult, run: RunState) -> None:
        """Ledger first (one commit per batch), then `on_result`, one result at a time; then the
        result's concurrency slot is free."""
        async with results:
            async for first in results:
                batch = [first]
                while len(batch) < WRITE_BATCH:
                    try:
                        batch.append(results.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                fresh = [r.call for r, _ in batch if not r.cached]
                if fresh:
                    settled = [i for r, _ in batch if not r.cached for i in run.open_attempts.pop(r.request.key, ())]
                    await run.writer.record(fresh, settled)
                for result, holder in batch:
                    run.count(result)
                    outcome = on_result(result)
                    if inspect.isawaitable(outcome):
                        await outcome
                    if holder is not None:
                        self.concurrency.release(holder)

    # --- helpers: client, probe, signals, progress ---------------------------------------------

    def _endpoints(self) -> AbstractAsyncContextManager[Endpoints]:
        return open_endpoints(self.settings, api_key=self._api_key, http_client=self._http_client)

    async def _end_probe(self, run: RunState) -> None:
        """Open the concurrency once the probe is answered, or after PROBE_WAIT_S of silence (a slow
        server: to two, until its first answer says whether it sends rate limits). A server that answers
        only errors keeps it at one request until one succeeds."""
        with anyio.move_on_after(PROBE_WAIT_S):
            await run.first_answer.wait()
        if not run.first_answer.is_set() and run.answered_error:
            await run.first_answer.wait()
        self.concurrency.open(answered=run.first_answer.is_set())

    async def _watch_signals(self, run: RunState) -> None:
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

    async def _show_progress(self, run: RunState) -> None:
        line = progress_display()
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
            stopping=run.stop_reason, held_by=self._held_by(run), goal=None if run.goal is None else run.goal(),
        )

    def _held_by(self, run: RunState) -> str | None:
        """What holds the pace now, for the progress line: the first that makes requests wait."""
        if run.budget is not None and run.budget.waiting:
            return "the budget"
        if self.rate.holding is not None:
            return self.rate.holding
        c = self.concurrency
        if c.full:
            if c.limit >= c.ceiling:
                return f"the concurrency cap (--max-concurrency {c.ceiling})"
            return f"the concurrency cap ({c.limit}, growing while the limits have room)"
        return None


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
