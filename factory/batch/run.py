"""The Batch API path: the same requests as the online engine, at half the price, within 24 hours.

    async with batch_client(settings) as client:
        stats = await run_batch(requests, on_result, ledger=ledger, settings=settings, client=client)

`run_batch` takes one stage's `ChatRequest`s and gives each final `ChatResult` to `on_result`,
exactly as `Engine.run` does, so a recipe or the judge parses, filters and dedups the same way
whichever path answered. How a call flows (read `_BatchRun.run` top to bottom):

1. Requests already `done` in the ledger come back at once as cached results, and so do the
   final failures of earlier runs (a request the API refused is not paid for again unless
   `BatchSettings.retry_failed`).
2. Batches an earlier run submitted and did not collect are attached to, never submitted again:
   the ledger records every input file right after its upload and every batch right after its
   creation (see ledger.py), so even a kill between the two is recovered (the rerun finds
   the batch made from that file on the server, or makes it from the same file).
3. `--max-cost`: what the budget's stages spent, plus the worst case of what is in open batches
   and of what is about to be submitted (input estimate + max_tokens, at batch prices), must fit;
   the requests that fit are submitted, in order, and the rest is said (`stats.budget_note`);
   when none fits, nothing is submitted and `BatchBudgetError` says by how much it is over.
4. The rest is written as input JSONL (custom_id = the ledger's request hash), split by the API's
   limits (50,000 requests, 200 MB, one model per file), uploaded, and made into batches.
5. Polling with backoff, with a progress line by state. A finished batch (completed, expired,
   cancelled) is collected: answers recorded at batch prices from each line's `usage`, then given
   to `on_result`. Lines that failed in a way a retry may cure (5xx, 429, timeouts) and lines the
   batch never reached (expired, cancelled) are resubmitted in a new batch, up to `max_attempts`
   per request; 400-class failures are final (recorded so in ledger.py's batch_final_failures).
   With `wait=False` (`--batch-wait no`) it checks the open batches once, collects what finished,
   submits what is left, and returns: a later rerun collects the rest.

Nothing is lost on Ctrl-C or kill -9: batches keep running on the server and the rerun collects
them. Multi-stage recipes call `run_batch` once per stage, and stop after a stage that returned
with `stats.pending` (with `wait=False`): the next stage needs its answers.

The steps live beside this module: api.py (the calls, retried), budget.py, collect.py (what a
result line means), ledger.py (the bookkeeping), files.py (input and output JSONL), stats.py.
Commands: `add_batch_arguments` / `batch_settings_from_args` (settings.py) give a command
`--batch` and the `--batch-*` settings; `python -m factory batch` (cli.py) sends a JSONL file this way.
"""

from __future__ import annotations

import inspect
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

import anyio
import openai

from factory.batch.api import BatchCalls
from factory.engine.budget import Budget, fit_budget, over_budget, worst_case
from factory.batch.collect import batch_end, result_call
from factory.errors import BatchBudgetError, BatchFailedError
from factory.batch.files import InputFile, LineResult, read_lines, split_into_files
from factory.batch.ledger import BatchFile, BatchLedger
from factory.batch.settings import BatchSettings
from factory.batch.stats import TERMINAL, BatchStats, OpenBatch, Progress, describe
from factory.engine import ChatRequest, ChatResult, OnResult
from factory.engine.ledger import Ledger
from factory.engine.pricing import PriceTable, price_table_for
from factory.engine.settings import EngineSettings
from schemas import LLMCall

log = logging.getLogger(__name__)

# Results written to the ledger per transaction while collecting.
WRITE_CHUNK = 1000


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
    budget_stages: Iterable[str] | None = None,
) -> BatchStats:
    """Complete `requests` through the Batch API, each once, calling `on_result` for each final
    result. `wait` (default: `batch.wait`) False: submit, collect what has finished, return.
    `settings.max_cost` covers the spending of `budget_stages` in the ledger (default: the
    stages of `requests`): a command that runs several stages passes all of them.

    Submits the requests that fit the budget, in order, and says what was left out
    (`stats.left_over`, `stats.budget_note`). Raises BatchBudgetError (nothing submitted) when
    not even one fits, PriceUnknownError when a budget is set and a model has no price,
    FatalAPIError when the API refuses the key or the endpoint, BatchFailedError when the API
    refuses a whole input file.
    """
    batch = batch or BatchSettings()
    wait = batch.wait if wait is None else wait
    show = progress if progress is not None else (sys.stderr if settings.progress else None)
    with BatchLedger(ledger) as books:
        run = _BatchRun(settings, batch, ledger, books, client, on_result, show)
        return await run.run(list(requests), wait=wait, budget_stages=budget_stages)


async def find_lost_batches(books: BatchLedger, calls: BatchCalls, stages: Iterable[str] | None = None) -> list[str]:
    """Look on the server for the batch of each uploaded file recorded without one (the process
    died after the batch was created and before its id was recorded: the lookup a rerun does),
    and record each one found, as a rerun would. Returns their ids."""
    found = []
    for f in books.open_files(stages):
        if f.batch_id is None and (b := await calls.find_batch(f.file_id, f.uploaded_at)) is not None:
            log.info("found batch %s made from file %s, whose create reply was lost", b.id, f.file_id)
            books.record_batch(b.id, b.status, f, books.keys(f.file_id))
            found.append(b.id)
    return found


async def cancel_open_batches(ledger: Ledger, client: openai.AsyncOpenAI, stages: Iterable[str] | None = None,
                              *, settings: EngineSettings | None = None) -> list[str]:
    """Ask the API to cancel every batch of the run (of `stages`) not collected yet, those whose
    create reply was lost included. A later `run_batch` collects what they finished and resubmits
    the rest. Returns the batch ids."""
    cancelled = []
    calls = BatchCalls(client, settings or EngineSettings())
    with BatchLedger(ledger) as books:
        await find_lost_batches(books, calls, stages)
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
        self.api = BatchCalls(client, settings)
        self.on_result = on_result
        self.prices: PriceTable = price_table_for(settings)
        self.progress = Progress(progress) if progress is not None else None
        self.stats = BatchStats()
        self.requests: dict[str, ChatRequest] = {}
        self.open: dict[str, OpenBatch] = {}
        self.retry_queue: list[ChatRequest] = []
        self.attempts: dict[str, int] = {}  # batch attempts of each request in this run
        self.hold_until_idle = False  # the organisation's token queue is full: resubmit when idle
        self.warned_no_batch_price: set[str] = set()
        self.budget_stages: tuple[str, ...] = ()  # whose spending --max-cost covers (set by `run`)
        self.started = time.monotonic()

    async def run(self, requests: list[ChatRequest], *, wait: bool, budget_stages: Iterable[str] | None) -> BatchStats:
        for r in requests:
            self.stats.requests += 1
            if r.key in self.requests:
                self.stats.duplicates += 1
            else:
                self.requests[r.key] = r
        stages = sorted({r.stage for r in self.requests.values()})
        self.budget_stages = tuple(sorted(set(budget_stages))) if budget_stages is not None else tuple(stages)
        if self.settings.max_cost is not None:
            for model in sorted({r.model for r in self.requests.values()}):
                self.prices.require(model)
        todo = await self._give_back_done()
        open_files = self.books.open_files(stages)
        keys_of = {f.file_id: self.books.keys(f.file_id) for f in open_files}
        in_open = {k for keys in keys_of.values() for k in keys}
        new = [r for r in todo if r.key not in in_open]
        # Open batches, and files uploaded by a killed run without a batch (made into one from the
        # same file, whole): committed before any new request.
        committed = [r for r in todo if r.key in in_open]
        new = self._fit_budget(new, committed, orphans=any(f.batch_id is None for f in open_files))
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
        """Deliver what the ledger has done, and the final failures of earlier runs (a request the
        API refused is refused again: not paid for twice unless `retry_failed`). Returns the rest."""
        final = self.books.final_failures()
        if self.batch.retry_failed:
            self.books.clear_final(k for k in self.requests if k in final)
            final = {}
        todo = []
        for key, request in self.requests.items():
            stored = self.ledger.get_done(key)
            if stored is None and key in final:
                row = self.ledger.get(key)
                if row is not None and row.status == "failed":
                    self.stats.final_earlier += 1
                    self.stats.final_errors[row.error or final[key]] += 1
                    await self._deliver(ChatResult(request, row, cached=True))
                    continue
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
            self.open[f.batch_id] = OpenBatch(f, f.batch_id, status, keys)
            log.info("attached to batch %s (%d requests) submitted by an earlier run", f.batch_id, len(keys))
            return
        # Killed between upload and create: the batch may exist (the answer to create was lost).
        found = await self.api.find_batch(f.file_id, f.uploaded_at)
        if found is not None:
            self.stats.batches_attached += 1
            log.info("found batch %s made from file %s by an earlier run", found.id, f.file_id)
        elif not any(k in self.requests and self.ledger.get_done(k) is None for k in keys):
            log.info("not submitting file %s that an earlier run uploaded: this run asks for none of its "
                     "requests, or they are done", f.file_id)
            self.books.mark_collected(f.file_id)
            return
        else:
            found = await self.api.create(f.file_id, f.uploaded_at, f.stage)
            self.stats.batches_created += 1
            self.stats.submitted += len(keys)
            log.info("created batch %s from file %s that an earlier run uploaded", found.id, f.file_id)
        self.stats.batch_ids.append(found.id)
        self._record_batch(found, f, keys)

    # --- 3. the budget --------------------------------------------------------------------------

    def _budget(self) -> Budget | None:
        limit = self.settings.max_cost
        if limit is None:
            return None
        return Budget(limit, self.budget_stages, spent=sum(self.ledger.spent_usd(stage) for stage in self.budget_stages))

    def _fit_budget(self, new: list[ChatRequest], committed: list[ChatRequest], *, orphans: bool) -> list[ChatRequest]:
        """The new requests that fit the budget beside the committed ones; what is left is said.
        Nothing fits: BatchBudgetError, before anything is uploaded."""
        budget = self._budget()
        if budget is None or not (new or orphans):
            return new
        fits, message = fit_budget(new, committed, budget=budget, prices=self.prices)
        if message is None:
            return new
        if fits == 0:
            too_small = bool(new) and worst_case(new[:1], self.prices).usd > budget.limit
            raise BatchBudgetError(message + " (nothing was submitted)", too_small=too_small)
        log.warning("%s", message)
        self.stats.left_over, self.stats.budget_note, self.stats.stopped_reason = len(new) - fits, message, "budget"
        return new[:fits]

    def _check_budget(self, requests: list[ChatRequest], running: list[ChatRequest]) -> bool:
        """Whether a resubmission of `requests` fits the budget beside the `running` ones."""
        budget = self._budget()
        if budget is None or not requests:
            return True
        message = over_budget(requests, running, budget=budget, prices=self.prices)
        if message is None:
            return True
        log.warning("not resubmitting %d requests: %s", len(requests), message)
        self.stats.budget_note = f"{len(requests)} requests to resubmit were not sent: {message}"
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
        uploaded = await self.api.upload(name, input_file.data)
        keys = input_file.keys
        # Recorded before the batch is created: a kill from here on is recovered by the rerun.
        self.books.add_file(uploaded.id, stage=stage, model=input_file.model, keys=keys,
                            nbytes=len(input_file.data), uploaded_at=uploaded.created_at)
        f = BatchFile(uploaded.id, stage, input_file.model, len(keys), len(input_file.data),
                      uploaded.created_at, None, None)
        created = await self.api.create(uploaded.id, uploaded.created_at, stage)
        self._record_batch(created, f, keys)
        self.stats.batches_created += 1
        self.stats.submitted += len(keys)
        self.stats.batch_ids.append(created.id)
        log.info("submitted batch %s: %d %s requests (%d bytes)", created.id, len(keys), stage, len(input_file.data))

    def _record_batch(self, b: Any, f: BatchFile, keys: list[str]) -> None:
        self.books.record_batch(b.id, b.status, f, keys)
        self.open[b.id] = OpenBatch(f, b.id, b.status, keys)

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
            b = await self.api.call(
                f"checking batch {o.batch_id}", lambda o=o: self.api.client.batches.retrieve(o.batch_id),
                not_found=f"batch {o.batch_id}, recorded in {self.ledger.path}, is unknown to {self.settings.base_url}: "
                          "was the run started against another server or project?",
            )
            counts = b.request_counts
            o.completed, o.failed = (counts.completed, counts.failed) if counts else (0, 0)
            if b.status != o.status or b.status in TERMINAL:  # terminal: its file ids, even if created so
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
            if self._check_budget(queue, running):
                self.stats.resubmitted += len(queue)
                await self._submit(queue)
            else:
                self.stats.stopped_reason = "budget"
        if self.progress is not None:
            self.progress.show(self._describe())
        return finished

    async def _collect(self, o: OpenBatch, b: Any) -> None:
        """Read a finished batch's output and error files; record, deliver, and queue retries."""
        lines: dict[str, LineResult] = {}
        end = batch_end(b, len(o.keys), o.file.stage)
        self.hold_until_idle = self.hold_until_idle or end.hold_until_idle
        for file_id in (b.error_file_id, b.output_file_id):  # answers win over errors for one custom_id
            if file_id:
                content = await self.api.call(f"downloading {file_id}", lambda fid=file_id: self.api.client.files.content(fid))
                lines.update((r.custom_id, r) for r in read_lines(content.text))
        price = self.prices.lookup(o.file.model)
        known_final = self.books.final_failures()
        for start in range(0, len(o.keys), WRITE_CHUNK):
            calls: list[LLMCall] = []
            final: list[LLMCall] = []
            refused: list[tuple[str, str, str]] = []  # (key, batch, error): final, not to be resent
            for key in o.keys[start:start + WRITE_CHUNK]:
                row = self.ledger.get(key)
                if row is not None and row.status == "done":
                    continue  # recorded already (by a collection cut short by a kill, or online)
                if row is not None and row.status == "failed" and getattr(row, "batch_id", None) == b.id:
                    # Recorded by a collection cut short by a kill: a final failure is given back,
                    # any other goes again (the ledger keeps its first failure).
                    if key in known_final and end.refusal is None:
                        self.stats.failed += 1
                        self.stats.final_errors[row.error or known_final[key]] += 1
                        final.append(row)
                    elif key in self.requests:
                        self.retry_queue.append(self.requests[key])
                    continue
                attempts = self.attempts[key] = self.attempts.get(key, 0) + 1
                line = lines.get(key, end.unfinished)
                call, give_up = result_call(key, o.file, b.id, line, price, attempts=attempts,
                                            max_attempts=self.settings.max_attempts, no_batch_price=self._no_batch_price)
                calls.append(call)
                if call.status == "done" or give_up:
                    final.append(call)
                    if give_up and not line.retryable and end.refusal is None:
                        refused.append((key, b.id, call.error or "no error message"))
                elif key in self.requests:
                    self.retry_queue.append(self.requests[key])
            # The marks go first: a mark whose ledger row is not `failed` is ignored (see _give_back_done).
            self.books.mark_final(refused)
            self.ledger.record(calls)  # before anyone sees a result
            self.stats.final_errors.update(error for _, _, error in refused)
            recorded = {id(c) for c in calls}
            final_ids = {id(c) for c in final}
            for call in calls:
                self._count(call, final=id(call) in final_ids)
            for call in final:
                request = self.requests.get(call.key)
                if request is None:
                    log.warning("batch %s answered request %s, which this run did not ask for: recorded, not delivered",
                                b.id, call.key[:12])
                    continue
                if end.refusal is None:
                    await self._deliver(ChatResult(request, call, cached=id(call) not in recorded))
        self._close(o)
        if end.refusal is not None:
            raise BatchFailedError(end.refusal)

    def _no_batch_price(self, model: str, price: Any) -> None:
        if model not in self.warned_no_batch_price:
            self.warned_no_batch_price.add(model)
            log.warning("no batch price known for %s (%s): its batch costs are recorded at the standard "
                        "price, an upper bound", model, price.source)

    def _close(self, o: OpenBatch) -> None:
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

    def _describe(self) -> str:
        return describe(list(self.open.values()), self.stats, len(self.requests), len(self.retry_queue))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"
