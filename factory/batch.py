"""The Batch API path: the same requests as the online engine, at half the price, within 24 hours.

    async with batch_client(settings) as client:
        stats = await run_batch(requests, on_result, ledger=ledger, settings=settings, client=client)

`run_batch` takes one stage's `ChatRequest`s and gives each final `ChatResult` to `on_result`,
exactly as `Engine.run` does, so a recipe or the judge parses, filters and dedups the same way
whichever path answered. How a call flows (read `_BatchRun.run` top to bottom):

1. Requests already `done` in the ledger come back at once as cached results.
2. Batches an earlier run submitted and did not collect are attached to, never submitted again:
   the ledger records every input file right after its upload and every batch right after its
   creation (see batch_ledger.py), so even a kill between the two is recovered (the rerun finds
   the batch made from that file on the server, or makes it from the same file).
3. `--max-cost`: what was spent, plus the worst case of what is in open batches and of what is
   about to be submitted (input estimate + max_tokens, at batch prices), must fit; otherwise
   nothing is submitted and `BatchBudgetError` says by how much it is over.
4. The rest is written as input JSONL (custom_id = the ledger's request hash), split by the API's
   limits (50,000 requests, 200 MB, one model per file), uploaded, and made into batches.
5. Polling with backoff, with a progress line by state. A finished batch (completed, expired,
   cancelled) is collected: answers recorded at batch prices from each line's `usage`, then given
   to `on_result`. Lines that failed in a way a retry may cure (5xx, 429, timeouts) and lines the
   batch never reached (expired, cancelled) are resubmitted in a new batch, up to `max_attempts`
   per request; 400-class failures are final.
   With `wait=False` (`--batch-wait no`) it checks the open batches once, collects what finished,
   submits what is left, and returns: a later rerun collects the rest.

Nothing is lost on Ctrl-C or kill -9: batches keep running on the server and the rerun collects
them. Multi-stage recipes call `run_batch` once per stage, and stop after a stage that returned
with `stats.pending` (with `wait=False`): the next stage needs its answers.

Commands: `add_batch_arguments` / `batch_settings_from_args` give a command `--batch` and the
`--batch-*` settings; `python -m factory batch` (batch_cli.py) sends a JSONL file this way.
"""

from __future__ import annotations

import inspect
import logging
import math
import re
import sys
import time
import tomllib
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeVar

import anyio
import httpx
import openai
from pydantic import BaseModel, ConfigDict, Field, model_validator

from factory.batch_io import (
    MAX_FILE_BYTES,
    MAX_REQUESTS_PER_FILE,
    InputFile,
    LineResult,
    read_lines,
    split_into_files,
)
from factory.batch_ledger import BatchFile, BatchLedger
from factory.engine import ChatRequest, ChatResult, OnResult, api_key_for, openai_client
from factory.errors import FactoryError, FatalAPIError
from factory.engine.ledger import Ledger
from factory.engine.pricing import PriceTable, price_table_for
from factory.engine.retry import RetryPolicy, classify
from factory.engine.settings import EngineSettings, load_settings
from factory.engine.tokens import estimate_input, estimator_name
from schemas import LLMCall, Usage

log = logging.getLogger(__name__)

COMPLETION_WINDOW = "24h"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
# A batch listed as created this long before its input file's upload cannot have been made from
# it: listing stops there when looking for the batch of a file.
LIST_SLACK_S = 300
# Results written to the ledger per transaction while collecting.
WRITE_CHUNK = 1000
# A failed batch with this error code was refused for the organisation's queue of enqueued tokens:
# its requests go again once the other batches have finished.
TOKEN_LIMIT_CODE = "token_limit_exceeded"

T = TypeVar("T")


class BatchSettings(BaseModel):
    """How requests go through the Batch API (the `[batch]` section of a settings file)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    max_requests_per_file: int = Field(default=MAX_REQUESTS_PER_FILE, ge=1, le=MAX_REQUESTS_PER_FILE,
                                       description="requests per input file (the API allows 50,000)")
    max_file_bytes: int = Field(default=MAX_FILE_BYTES, ge=1024, le=MAX_FILE_BYTES,
                                description="bytes per input file (the API allows 200 MB)")
    wait: bool = Field(default=True, description="wait for the batches; False: submit, collect on a rerun")
    poll_initial_s: float = Field(default=5.0, gt=0, description="first wait between status checks")
    poll_max_s: float = Field(default=60.0, gt=0, description="longest wait between status checks")

    @model_validator(mode="after")
    def _poll_order(self) -> BatchSettings:
        if self.poll_max_s < self.poll_initial_s:
            raise ValueError(f"poll_max_s ({self.poll_max_s}) must be at least poll_initial_s ({self.poll_initial_s})")
        return self


class BatchBudgetError(FactoryError):
    """The worst case of the batch does not fit `--max-cost`: nothing was submitted."""


class BatchFailedError(FactoryError):
    """The API refused a whole batch (its input file failed validation)."""


@dataclass
class BatchStats:
    requests: int = 0  # given by the caller
    duplicates: int = 0  # the same key twice: sent once
    cached: int = 0  # done in an earlier run: given back from the ledger
    done: int = 0  # answered in this run
    failed: int = 0  # gave up in this run (not retryable, or out of attempts)
    pending: int = 0  # still in batches on the server when `run_batch` returned
    submitted: int = 0  # request lines sent in new batches this run (resubmissions included)
    resubmitted: int = 0  # of which, sent again after a failed or unfinished line
    batches_created: int = 0
    batches_attached: int = 0  # submitted by an earlier run, found open and followed
    batch_ids: list[str] = field(default_factory=list)  # created or attached in this run
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = 0.0  # at batch prices; None when a model's price is unknown
    stopped_reason: str | None = None  # None, or "budget": a resubmission did not fit --max-cost
    elapsed_s: float = 0.0

    def summary(self) -> str:
        cost = "unknown" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        stopped = f"; stopped: {self.stopped_reason}" if self.stopped_reason else ""
        pending = f", {self.pending} pending in batches (rerun to collect)" if self.pending else ""
        return (
            f"{self.done} done, {self.failed} failed, {self.cached} cached, {self.duplicates} duplicate{pending}; "
            f"{self.batches_created} batches created, {self.batches_attached} attached; "
            f"{self.submitted} lines submitted ({self.resubmitted} resubmitted); "
            f"{self.usage.input_tokens} input + {self.usage.output_tokens} output tokens; {cost} at batch prices; "
            f"{self.elapsed_s:.1f}s{stopped}"
        )


async def run_batch(
    requests: Iterable[ChatRequest],
    on_result: OnResult,
    *,
    ledger: Ledger,
    settings: EngineSettings,
    client: openai.AsyncOpenAI,
    batch: BatchSettings | None = None,
    wait: bool | None = None,
    progress: TextIO | None = None,
) -> BatchStats:
    """Complete `requests` through the Batch API, each once, calling `on_result` for each final
    result. `wait` (default: `batch.wait`) False: submit, collect what has finished, return.

    Raises BatchBudgetError (nothing submitted) when the worst case does not fit
    `settings.max_cost`, PriceUnknownError when a budget is set and a model has no price,
    FatalAPIError when the API refuses the key or the endpoint, BatchFailedError when the API
    refuses a whole input file.
    """
    batch = batch or BatchSettings()
    wait = batch.wait if wait is None else wait
    show = progress if progress is not None else (sys.stderr if settings.progress else None)
    with BatchLedger(ledger) as books:
        run = _BatchRun(settings, batch, ledger, books, client, on_result, show)
        return await run.run(list(requests), wait=wait)


def batch_client(
    settings: EngineSettings, *, api_key: str | None = None, http_client: httpx.AsyncClient | None = None
) -> AbstractAsyncContextManager[openai.AsyncOpenAI]:
    """The client `run_batch` needs: the engine's (factory.engine.openai_client), with the key from the
    environment (or `.env`) unless one is given."""
    return openai_client(settings, api_key=api_key_for(settings, api_key), http_client=http_client)


async def cancel_open_batches(ledger: Ledger, client: openai.AsyncOpenAI, stages: Iterable[str] | None = None) -> list[str]:
    """Ask the API to cancel every batch of the run (of `stages`) not collected yet. A later
    `run_batch` collects what they finished and resubmits the rest. Returns the batch ids."""
    cancelled = []
    with BatchLedger(ledger) as books:
        for f in books.open_files(stages):
            if f.batch_id is None:
                continue
            try:
                b = await client.batches.cancel(f.batch_id)
            except openai.BadRequestError as exc:  # already finished: nothing to cancel
                log.info("batch %s not cancelled: %s", f.batch_id, exc)
                continue
            ledger.save_batch(b.id, stage=f.stage, model=f.model, status=b.status)
            cancelled.append(b.id)
    return cancelled


# --------------------------------------------------------------------------------------------


@dataclass
class _Open:
    """A batch on the server whose results are not collected yet."""

    file: BatchFile
    batch_id: str
    status: str
    keys: list[str]
    completed: int = 0
    failed: int = 0


class _BatchRun:
    def __init__(
        self,
        settings: EngineSettings,
        batch: BatchSettings,
        ledger: Ledger,
        books: BatchLedger,
        client: openai.AsyncOpenAI,
        on_result: OnResult,
        progress: TextIO | None,
    ) -> None:
        self.settings = settings
        self.batch = batch
        self.ledger = ledger
        self.books = books
        self.client = client
        self.on_result = on_result
        self.prices: PriceTable = price_table_for(settings)
        self.retry = RetryPolicy(settings.max_attempts)
        self.progress = _Progress(progress) if progress is not None else None
        self.stats = BatchStats()
        self.requests: dict[str, ChatRequest] = {}
        self.open: dict[str, _Open] = {}
        self.retry_queue: list[ChatRequest] = []
        self.attempts: dict[str, int] = {}  # batch attempts of each request in this run
        self.hold_until_idle = False  # the organisation's token queue is full: resubmit when idle
        self.warned_no_batch_price: set[str] = set()
        self.started = time.monotonic()

    async def run(self, requests: list[ChatRequest], *, wait: bool) -> BatchStats:
        for r in requests:
            self.stats.requests += 1
            if r.key in self.requests:
                self.stats.duplicates += 1
            else:
                self.requests[r.key] = r
        stages = sorted({r.stage for r in self.requests.values()})
        if self.settings.max_cost is not None:
            for model in sorted({r.model for r in self.requests.values()}):
                self.prices.require(model)
        todo = await self._give_back_done()
        open_files = self.books.open_files(stages)
        keys_of = {f.file_id: self.books.keys(f.file_id) for f in open_files}
        in_open = {k for keys in keys_of.values() for k in keys}
        new = [r for r in todo if r.key not in in_open]
        # Files uploaded by a killed run without a batch may be submitted now: budgeted like new ones.
        orphan = {k for f in open_files if f.batch_id is None for k in keys_of[f.file_id]}
        to_submit = new + [r for r in todo if r.key in orphan]
        if to_submit:
            running = [r for r in todo if r.key in in_open and r.key not in orphan]
            self._check_budget(to_submit, running, first=True)
        try:
            for f in open_files:
                await self._attach(f)
            await self._submit(new)
            await self._poll_once()
            if wait:
                await self._wait_all()
        except BaseException:
            if self.open:
                log.warning("%d batches are still running on the server and recorded in %s: rerun the same "
                            "command to collect them (they are not submitted again)", len(self.open), self.ledger.path)
            raise
        finally:
            self.stats.pending = sum(len(o.keys) for o in self.open.values())
            self.stats.elapsed_s = time.monotonic() - self.started
            if self.progress is not None:
                self.progress.show(self._describe(), force=True)
        log.info("batch run finished: %s", self.stats.summary())
        return self.stats

    # --- 1. what is done already ---------------------------------------------------------

    async def _give_back_done(self) -> list[ChatRequest]:
        todo = []
        for key, request in self.requests.items():
            stored = self.ledger.get_done(key)
            if stored is None:
                todo.append(request)
                continue
            self.stats.cached += 1
            await self._deliver(ChatResult(request, stored, cached=True))
        return todo

    # --- 2. attaching to what an earlier run submitted --------------------------------------

    async def _attach(self, f: BatchFile) -> None:
        keys = self.books.keys(f.file_id)
        if f.batch_id is not None:
            self.stats.batches_attached += 1
            self.stats.batch_ids.append(f.batch_id)
            status = next((b["status"] for b in self.ledger.batches(f.stage) if b["batch_id"] == f.batch_id), "validating")
            self.open[f.batch_id] = _Open(f, f.batch_id, status, keys)
            log.info("attached to batch %s (%d requests) submitted by an earlier run", f.batch_id, len(keys))
            return
        # Killed between upload and create: the batch may exist (the answer to create was lost).
        found = await self._find_batch(f.file_id, f.uploaded_at)
        if found is not None:
            self.stats.batches_attached += 1
            log.info("found batch %s made from file %s by an earlier run", found.id, f.file_id)
        elif not any(k in self.requests and self.ledger.get_done(k) is None for k in keys):
            log.info("not submitting file %s that an earlier run uploaded: this run asks for none of its "
                     "requests, or they are done", f.file_id)
            self.books.mark_collected(f.file_id)
            return
        else:
            found = await self._create(f.file_id, f.uploaded_at, f.stage)
            self.stats.batches_created += 1
            self.stats.submitted += len(keys)
            log.info("created batch %s from file %s that an earlier run uploaded", found.id, f.file_id)
        self.stats.batch_ids.append(found.id)
        self._record_batch(found, f, keys)

    # --- 3. the budget --------------------------------------------------------------------------

    def _check_budget(self, requests: list[ChatRequest], running: list[ChatRequest], *, first: bool) -> bool:
        """Whether `requests` may be submitted: the money spent, plus the worst case of `requests`
        and of the `running` ones (open batches, billed when they finish), must fit --max-cost.
        Refused before the first submission: BatchBudgetError. Later (a resubmission): False."""
        limit = self.settings.max_cost
        if limit is None or not requests:
            return True
        spent = sum(self.ledger.spent_usd(stage) for stage in sorted({r.stage for r in self.requests.values()}))
        counted = {r.key: r for r in running}
        counted.update({r.key: r for r in requests})
        worst = 0.0
        input_tokens = output_tokens = 0
        for r in counted.values():
            estimate = estimate_input(r.model, r.messages, r.params).tokens
            worst += self.prices.require(r.model).worst_case(estimate, r.max_output_tokens, batch=True)
            input_tokens += estimate
            output_tokens += r.max_output_tokens
        if spent + worst <= limit:
            return True
        models = sorted({r.model for r in counted.values()})
        message = (
            f"--max-cost {_usd(limit)} is too small for this batch: its worst case is {_usd(worst)} "
            f"({len(counted)} requests: ~{input_tokens} input tokens, estimated by "
            f"{', '.join(estimator_name(m) for m in models)}, + {output_tokens} max_tokens, at batch prices) "
            f"and {_usd(spent)} is already spent; raise --max-cost to at least {_usd(spent + worst, up=True)}, "
            "lower max_tokens, or send fewer requests"
        )
        if first:
            raise BatchBudgetError(message + " (nothing was submitted)")
        log.warning("not resubmitting %d requests: %s", len(requests), message)
        return False

    # --- 4. submitting ----------------------------------------------------------------------------

    async def _submit(self, requests: list[ChatRequest]) -> None:
        groups: dict[str, list[ChatRequest]] = {}
        for r in requests:
            groups.setdefault(r.stage, []).append(r)
        for stage, group in groups.items():
            files = split_into_files(group, max_requests=self.batch.max_requests_per_file,
                                     max_bytes=self.batch.max_file_bytes)
            for number, input_file in enumerate(files, start=1):
                await self._submit_file(stage, input_file, number, len(files))
        if requests and self.progress is not None:
            self.progress.show(self._describe())

    async def _submit_file(self, stage: str, input_file: InputFile, number: int, of: int) -> None:
        name = f"{_slug(stage)}-{_slug(input_file.model)}-{number}-of-{of}.jsonl"
        uploaded = await self._api(
            f"uploading {name}",
            lambda: self.client.files.create(file=(name, input_file.data, "application/jsonl"), purpose="batch"),
            not_found="the server has no /v1/files endpoint: the Batch API needs OpenAI or a server that offers it",
        )
        keys = input_file.keys
        # Recorded before the batch is created: a kill from here on is recovered by the rerun.
        self.books.add_file(uploaded.id, stage=stage, model=input_file.model, keys=keys,
                            nbytes=len(input_file.data), uploaded_at=uploaded.created_at)
        f = BatchFile(uploaded.id, stage, input_file.model, len(keys), len(input_file.data),
                      uploaded.created_at, None, None)
        created = await self._create(uploaded.id, uploaded.created_at, stage)
        self._record_batch(created, f, keys)
        self.stats.batches_created += 1
        self.stats.submitted += len(keys)
        self.stats.batch_ids.append(created.id)
        log.info("submitted batch %s: %d %s requests (%d bytes)", created.id, len(keys), stage, len(input_file.data))

    async def _create(self, file_id: str, uploaded_at: int, stage: str) -> Any:
        async def lost_answer() -> Any:
            # The create may have reached the server before the connection failed: look first.
            return await self._find_batch(file_id, uploaded_at)

        return await self._api(
            f"creating the batch of {file_id}",
            lambda: self.client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions",
                                               completion_window=COMPLETION_WINDOW,
                                               metadata={"created_by": "instruct-factory", "stage": stage[:500]}),
            before_retry=lost_answer,
            not_found="the server has no /v1/batches endpoint, or lost the uploaded file",
        )

    async def _find_batch(self, file_id: str, uploaded_at: int) -> Any | None:
        """The batch made from `file_id`, if any (the list is newest first)."""
        async def scan() -> Any | None:
            async for b in self.client.batches.list(limit=100):
                if b.input_file_id == file_id:
                    return b
                if b.created_at < uploaded_at - LIST_SLACK_S:
                    return None
            return None

        return await self._api(f"looking for the batch of {file_id}", scan)

    def _record_batch(self, b: Any, f: BatchFile, keys: list[str]) -> None:
        """Batch first, then its link to the file, then its requests as pending: each step on its
        own is enough for the rerun to find the batch."""
        self.ledger.save_batch(b.id, stage=f.stage, model=f.model, status=b.status,
                               input_file_id=f.file_id, request_count=len(keys))
        self.books.link(f.file_id, b.id)
        self.ledger.mark_pending(
            LLMCall(key=k, stage=f.stage, model=f.model, status="pending", cost_usd=0.0, batch=True, batch_id=b.id)
            for k in keys
        )
        self.open[b.id] = _Open(f, b.id, b.status, keys)

    # --- 5. polling and collecting --------------------------------------------------------------

    async def _wait_all(self) -> None:
        delay = self.batch.poll_initial_s
        while self.open:
            await anyio.sleep(delay)
            finished = await self._poll_once()
            delay = self.batch.poll_initial_s if finished else min(delay * 1.5, self.batch.poll_max_s)

    async def _poll_once(self) -> int:
        """Check every open batch; collect the finished ones; resubmit what failed. Returns how
        many batches finished."""
        finished = 0
        for o in list(self.open.values()):
            b = await self._api(
                f"checking batch {o.batch_id}", lambda o=o: self.client.batches.retrieve(o.batch_id),
                not_found=f"batch {o.batch_id}, recorded in {self.ledger.path}, is unknown to {self.settings.base_url}: "
                          "was the run started against another server or project?",
            )
            counts = b.request_counts
            o.completed, o.failed = (counts.completed, counts.failed) if counts else (0, 0)
            if b.status != o.status:
                log.info("batch %s: %s -> %s", o.batch_id, o.status, b.status)
                o.status = b.status
                self.ledger.save_batch(b.id, stage=o.file.stage, model=o.file.model, status=b.status,
                                       output_file_id=b.output_file_id, error_file_id=b.error_file_id)
            if b.status in TERMINAL:
                await self._collect(o, b)
                finished += 1
        if self.retry_queue and (not self.hold_until_idle or not self.open):
            queue, self.retry_queue, self.hold_until_idle = self.retry_queue, [], False
            running = [self.requests[k] for o in self.open.values() for k in o.keys if k in self.requests]
            if self._check_budget(queue, running, first=False):
                self.stats.resubmitted += len(queue)
                await self._submit(queue)
            else:
                self.stats.stopped_reason = "budget"
        if self.progress is not None:
            self.progress.show(self._describe())
        return finished

    async def _collect(self, o: _Open, b: Any) -> None:
        """Read a finished batch's output and error files; record, deliver, and queue retries."""
        lines: dict[str, LineResult] = {}
        unfinished = LineResult("", ok=False, retryable=True, error=f"no result line: the batch ended {b.status}")
        refusal: str | None = None
        if b.status == "failed":
            errors = list(b.errors.data) if b.errors and b.errors.data else []
            shown = "; ".join(f"{'line ' + str(e.line) + ': ' if e.line else ''}{e.code}: {e.message}" for e in errors[:5])
            shown = shown or "no reason given"
            if any(e.code == TOKEN_LIMIT_CODE for e in errors):
                log.warning("batch %s refused: the organisation's queue of batch tokens is full; its %d requests "
                            "go again when the other batches have finished", b.id, len(o.keys))
                self.hold_until_idle = True
                unfinished = LineResult("", ok=False, retryable=True, error=f"batch refused: {shown}")
            else:  # the input file itself was refused: sending it again would be refused again
                refusal = (f"the API refused batch {b.id} ({len(o.keys)} {o.file.stage} requests): {shown}; "
                           "nothing of it was answered or billed, and a rerun submits its requests again")
                unfinished = LineResult("", ok=False, retryable=False, error=f"batch refused: {shown}")
        for file_id in (b.error_file_id, b.output_file_id):  # answers win over errors for one custom_id
            if file_id:
                content = await self._api(f"downloading {file_id}", lambda fid=file_id: self.client.files.content(fid))
                lines.update((r.custom_id, r) for r in read_lines(content.text))
        price = self.prices.lookup(o.file.model)
        for start in range(0, len(o.keys), WRITE_CHUNK):
            calls: list[LLMCall] = []
            final: list[LLMCall] = []
            for key in o.keys[start:start + WRITE_CHUNK]:
                row = self.ledger.get(key)
                if row is not None and row.status == "done":
                    continue  # recorded already (by a collection cut short by a kill, or online)
                if row is not None and row.status == "failed" and getattr(row, "batch_id", None) == b.id:
                    # Recorded by a collection cut short by a kill; whether it was final is not
                    # known any more: it goes again (the ledger keeps its first failure).
                    if key in self.requests:
                        self.retry_queue.append(self.requests[key])
                    continue
                call, give_up = self._result_call(key, o, b.id, lines.get(key, unfinished), price)
                calls.append(call)
                if call.status == "done" or give_up:
                    final.append(call)
                elif key in self.requests:
                    self.retry_queue.append(self.requests[key])
            self.ledger.record(calls)  # before anyone sees a result
            final_ids = {id(c) for c in final}
            for call in calls:
                self._count(call, final=id(call) in final_ids)
            for call in final:
                request = self.requests.get(call.key)
                if request is None:
                    log.warning("batch %s answered request %s, which this run did not ask for: recorded, not delivered",
                                b.id, call.key[:12])
                    continue
                if refusal is None:
                    await self._deliver(ChatResult(request, call, cached=False))
        self._close(o)
        if refusal is not None:
            raise BatchFailedError(refusal)

    def _result_call(self, key: str, o: _Open, batch_id: str, line: LineResult, price: Any) -> tuple[LLMCall, bool]:
        """The ledger record of one line, and whether a failure is final."""
        attempts = self.attempts[key] = self.attempts.get(key, 0) + 1
        usage = line.usage or Usage()
        if line.usage is None:
            cost = None if line.ok else 0.0  # an answer without usage was paid, we cannot say how much
        elif price is None:
            cost = None
        else:
            cost = price.cost(usage, batch=True)
            if cost is None:  # no batch price known: the standard price bounds it from above
                if o.file.model not in self.warned_no_batch_price:
                    self.warned_no_batch_price.add(o.file.model)
                    log.warning("no batch price known for %s (%s): its batch costs are recorded at the standard "
                                "price, an upper bound", o.file.model, price.source)
                cost = price.cost(usage)
        give_up = not line.ok and (not line.retryable or attempts >= self.settings.max_attempts)
        error = line.error
        if give_up and line.retryable:
            error = f"{error} (gave up after {attempts} batch attempts)"
        call = LLMCall(
            key=key, stage=o.file.stage, model=o.file.model, status="done" if line.ok else "failed",
            attempts=1, usage=usage, cost_usd=cost, finish_reason=line.finish_reason, content=line.content,
            error=error, batch=True, batch_id=batch_id,
        )
        return call, give_up

    def _close(self, o: _Open) -> None:
        self.books.mark_collected(o.file.file_id)
        self.open.pop(o.batch_id, None)

    def _count(self, call: LLMCall, *, final: bool) -> None:
        """Usage and cost of every recorded line; done/failed only for final results."""
        s = self.stats
        if final:
            if call.status == "done":
                s.done += 1
            else:
                s.failed += 1
        s.usage = s.usage + call.usage
        if call.cost_usd is None:
            if call.usage.input_tokens + call.usage.output_tokens > 0 or call.status == "done":
                s.cost_usd = None
        elif s.cost_usd is not None:
            s.cost_usd += call.cost_usd

    async def _deliver(self, result: ChatResult) -> None:
        outcome = self.on_result(result)
        if inspect.isawaitable(outcome):
            await outcome

    # --- calling the API --------------------------------------------------------------------------

    async def _api(
        self,
        what: str,
        call: Callable[[], Awaitable[T]],
        *,
        before_retry: Callable[[], Awaitable[T | None]] | None = None,
        not_found: str | None = None,
    ) -> T:
        """One API call, retried like the engine's requests (5xx, 429, timeouts, lost connections);
        `before_retry` may find that a lost answer's work was done after all."""
        attempt = 0
        while True:
            attempt += 1
            try:
                with anyio.fail_after(self.settings.timeout_s):
                    return await call()
            except Exception as exc:  # never a cancellation: that is a BaseException
                if isinstance(exc, openai.NotFoundError) and not_found is not None:
                    raise FatalAPIError(f"{what}: not found (404): {not_found}", status=404) from exc
                failure = classify(exc, model="(batch)", base_url=self.settings.base_url)
                if isinstance(failure, FatalAPIError):
                    raise failure from exc
                if not failure.retryable or attempt >= self.settings.max_attempts:
                    raise FactoryError(f"{what} failed after {attempt} attempts: {failure.describe()}") from exc
                delay = self.retry.wait_after(failure, attempt)
                log.debug("%s: attempt %d failed (%s); retrying in %.2fs", what, attempt, failure.describe(), delay)
                await anyio.sleep(delay)
                if before_retry is not None and (found := await before_retry()) is not None:
                    log.info("%s: the lost answer's work was done; using it", what)
                    return found

    # --- progress -----------------------------------------------------------------------------------

    def _describe(self) -> str:
        by_status: dict[str, list[_Open]] = {}
        for o in self.open.values():
            by_status.setdefault(o.status, []).append(o)
        parts = []
        for status in ("validating", "in_progress", "finalizing", "cancelling", *sorted(TERMINAL)):
            group = by_status.get(status)
            if not group:
                continue
            text = f"{len(group)} {status}"
            if status == "in_progress":
                total = sum(len(o.keys) for o in group)
                text += (f" ({sum(o.completed for o in group)}/{total} lines done, "
                         f"{sum(o.failed for o in group)} failed)")
            parts.append(text)
        s = self.stats
        batches = ", ".join(parts) if parts else "no batch open"
        cost = "unknown" if s.cost_usd is None else f"${s.cost_usd:.4f}"
        unique = len(self.requests)
        line = (f"batch: {batches} | {s.done + s.cached}/{unique} done ({s.cached} cached), {s.failed} failed, "
                f"{len(self.retry_queue)} to resubmit | {cost} spent at batch prices")
        if s.stopped_reason:
            line += f" | stopped ({s.stopped_reason})"
        return line


class _Progress:
    """The batch progress line: rewritten in place on a terminal, a new line on change elsewhere."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last = ""
        self._width = 0

    def show(self, line: str, *, force: bool = False) -> None:
        """`force`: the last line of a run (a TTY gets its newline)."""
        if line == self._last and not (force and self.tty):
            return
        self._last = line
        if self.tty:
            self.stream.write("\r" + line + " " * max(0, self._width - len(line)) + ("\n" if force else ""))
            self._width = 0 if force else len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _usd(amount: float, *, up: bool = False) -> str:
    """Dollars with cents, or with 4 decimals below $1 (a small batch's cost is a fraction of a cent)."""
    digits = 2 if amount >= 1 else 4
    if up:
        amount = math.ceil(amount * 10**digits - 1e-9) / 10**digits
    return f"${amount:.{digits}f}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


# --------------------------------------------------------------------------------------------
# Command line: the flags a command that can use the Batch API adds (`generate`, `judge`), and
# the `batch` command itself.


def add_batch_arguments(parser: Any, *, switch: bool = True) -> None:
    """`--batch` (when `switch`: the command can go either way) and the --batch-* settings."""
    g = parser.add_argument_group("Batch API (half price, results within 24 h)")
    if switch:
        g.add_argument("--batch", action="store_true", help="send the requests through the Batch API")
    g.add_argument("--batch-wait", choices=("yes", "no"), default=None,
                   help="yes: wait for the batches (default); no: submit and exit, a rerun collects")
    g.add_argument("--batch-max-requests", type=int, default=None, help="requests per input file (at most 50000)")
    g.add_argument("--batch-max-bytes", type=int, default=None, help="bytes per input file (at most 200 MB)")
    g.add_argument("--batch-poll", type=float, default=None, help="first wait between status checks, seconds (default 5)")
    g.add_argument("--batch-poll-max", type=float, default=None, help="longest wait between status checks (default 60)")


def batch_settings_from_args(args: Any) -> BatchSettings:
    """BatchSettings from the [batch] section of `--config` (if it has one), then the --batch-* flags."""
    wait = getattr(args, "batch_wait", None)
    overrides = {
        "wait": None if wait is None else wait == "yes",
        "max_requests_per_file": getattr(args, "batch_max_requests", None),
        "max_file_bytes": getattr(args, "batch_max_bytes", None),
        "poll_initial_s": getattr(args, "batch_poll", None),
        "poll_max_s": getattr(args, "batch_poll_max", None),
    }
    config = getattr(args, "config", None)
    if config is not None and not _has_section(config, "batch"):
        config = None  # a file without [batch]: its top-level keys are the engine's, not ours
    return load_settings(config, overrides, model=BatchSettings, section="batch")


def _has_section(path: Any, section: str) -> bool:
    try:
        with open(path, "rb") as f:
            return isinstance(tomllib.load(f).get(section), dict)
    except (OSError, tomllib.TOMLDecodeError):
        return True  # let load_settings report the problem with its own message
