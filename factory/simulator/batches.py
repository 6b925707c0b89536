"""The Batch API: /v1/files and /v1/batches, with a time-compressed lifecycle.

Routes (registered by `BatchAPI.register`; all under /v1/, so the API-key check applies):
  POST /v1/files                     multipart upload (fields `purpose` and `file`)
  GET  /v1/files/{file_id}           the file object
  GET  /v1/files/{file_id}/content   the file's bytes (input, output and error files alike)
  POST /v1/batches                   create (input_file_id, endpoint, completion_window="24h")
  GET  /v1/batches                   list, newest first (`limit`, `after`)
  GET  /v1/batches/{batch_id}        retrieve
  POST /v1/batches/{batch_id}/cancel cancel

Lifecycle: a batch lives `BatchSimConfig.seconds` instead of up to 24 hours: validating (the
first 10 %), in_progress (80 %, `request_counts` rising line by line), finalizing (10 %), then
completed, or expired (unfinished lines in the error file as `batch_expired`, the finished ones in
the output file), or failed when validation found a bad input file. Cancel: cancelling for 10 %
of the time, then cancelled (finished lines kept, the rest `batch_cancelled`). The state is
computed from the clock whenever a batch is read, so no background task runs.

Every line is answered when the batch is created, by the same `parse_chat`/`ChatAnswerer` as
/v1/chat/completions. Its text is drawn from (seed, canonical body), plus the attempt when it
samples (temperature > 0 and no `seed`), so the same line in a later batch gets the same answer
unless it samples; its fault is drawn from (seed, body, custom_id, attempt).
A line errors (a 500 line in the error file) by `fail_rate`, when its custom_id is in
`fail_custom_ids` (its first attempt only), or through the chat trigger `[[sim-fault:KIND*N]]` in
its last user message. Attempts count per (custom_id, body) over all batches, so a resubmitted
line draws afresh. Submissions (accepted batch creates) are counted for /sim/stats.

Beside this module: batch_config.py (the settings and flags), batch_records.py (files, lines,
batches), batch_lines.py (validating and answering lines), multipart.py (reading uploads).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

from .batch_config import BatchSimConfig
from .batch_lines import ENDPOINT, LineAnswerer, prompt_tokens, validate_input
from .batch_records import SimBatch, StoredFile
from .chat import digest, unit_draw
from .config import SimConfig
from .errors import InvalidRequest, error_response
from .httpserver import Handler, Outcome, Request, Response, json_response
from .multipart import parse_multipart

COMPLETION_WINDOW = "24h"
FILE_PURPOSES = frozenset({"batch", "fine-tune", "assistants", "vision", "user_data", "evals"})
MAX_LISTED = 100
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})

# ---------------------------------------------------------------------------------------------
# The API


class BatchAPI:
    """The files and batches of one simulator, in memory."""

    def __init__(self, config: SimConfig, batch_config: BatchSimConfig | None = None) -> None:
        self.config = config
        self.batch_config = batch_config or BatchSimConfig()
        self.lines = LineAnswerer(config, self.batch_config)
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, SimBatch] = {}
        self._seed = str(config.seed).encode()
        self.counts = {"files_uploaded": 0, "submitted": 0, "cancelled": 0, "validation_failed": 0, "lines": 0,
                       "lines_ok": 0, "lines_failed": 0, "lines_expired": 0, "lines_cancelled": 0}

    def register(self, add_route: Any) -> None:
        routes: list[tuple[str, str, Handler]] = [
            ("POST", "/v1/files", self.upload),
            ("GET", "/v1/files/{file_id}", self.get_file),
            ("GET", "/v1/files/{file_id}/content", self.get_content),
            ("POST", "/v1/batches", self.create),
            ("GET", "/v1/batches", self.list_batches),
            ("GET", "/v1/batches/{batch_id}", self.retrieve),
            ("POST", "/v1/batches/{batch_id}/cancel", self.cancel),
        ]
        for method, path, handler in routes:
            add_route(method, path, handler)

    def stats(self) -> dict[str, Any]:
        by_status: dict[str, int] = {}
        now = time.monotonic()
        for batch in self.batches.values():
            status = self._advance(batch, now)
            by_status[status] = by_status.get(status, 0) + 1
        return {**self.counts, "by_status": dict(sorted(by_status.items()))}

    # --- files ---------------------------------------------------------------------------

    async def upload(self, req: Request) -> Outcome:
        try:
            fields = parse_multipart(req.headers.get("content-type", ""), req.body)
        except InvalidRequest as exc:
            return error_response(exc.status, exc.message, param=exc.param, code=exc.code)
        purpose = fields.get("purpose")
        upload = fields.get("file")
        if purpose is None or purpose.filename is not None:
            return error_response(400, "Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter")
        if upload is None or upload.filename is None:
            return error_response(400, "Missing required parameter: 'file' (a file part with a filename).", param="file",
                                  code="missing_required_parameter")
        purpose_text = purpose.data.decode("utf-8", "replace").strip()
        if purpose_text not in FILE_PURPOSES:
            return error_response(400, f"Invalid value for 'purpose': {purpose_text!r}; use 'batch' for Batch API input.",
                                  param="purpose", code="invalid_value")
        if purpose_text == "batch":
            if not upload.filename.endswith(".jsonl"):
                return error_response(400, "Invalid file format for Batch API. Must be .jsonl", param="file", code="invalid_file_format")
            if len(upload.data) > self.batch_config.max_file_bytes:
                return error_response(400, f"File is too large ({len(upload.data)} bytes); a Batch API input file may hold "
                                           f"at most {self.batch_config.max_file_bytes} bytes: split it.",
                                      param="file", code="file_too_large")
        stored = self._store(upload.filename, purpose_text, upload.data)
        self.counts["files_uploaded"] += 1
        return json_response(200, stored.obj())

    def _store(self, filename: str, purpose: str, content: bytes) -> StoredFile:
        stored = StoredFile(f"file-{secrets.token_hex(12)}", filename, purpose, content, int(time.time()))
        self.files[stored.id] = stored
        return stored

    def _file_or_404(self, file_id: str) -> StoredFile | Response:
        stored = self.files.get(file_id)
        if stored is None:
            return error_response(404, f"No such File object: {file_id}", param="id", code="file_not_found")
        return stored

    async def get_file(self, req: Request) -> Outcome:
        found = self._file_or_404(req.params["file_id"])
        return found if isinstance(found, Response) else json_response(200, found.obj())

    async def get_content(self, req: Request) -> Outcome:
        found = self._file_or_404(req.params["file_id"])
        if isinstance(found, Response):
            return found
        return Response(200, found.content, content_type="application/octet-stream")

    # --- batches -------------------------------------------------------------------------

    async def create(self, req: Request) -> Outcome:
        try:
            payload = json.loads(req.body)
        except (ValueError, UnicodeDecodeError):
            return error_response(400, "We could not parse the JSON body of your request.")
        if not isinstance(payload, dict):
            return error_response(400, "The request body must be a JSON object.")
        file_id = payload.get("input_file_id")
        if not isinstance(file_id, str) or not file_id:
            return error_response(400, "Missing required parameter: 'input_file_id'.", param="input_file_id",
                                  code="missing_required_parameter")
        if payload.get("endpoint") != ENDPOINT:
            return error_response(400, f"Invalid value for 'endpoint': {payload.get('endpoint')!r}; the simulator "
                                       f"serves only {ENDPOINT}.", param="endpoint", code="invalid_value")
        if payload.get("completion_window") != COMPLETION_WINDOW:
            return error_response(400, f"Invalid value for 'completion_window': {payload.get('completion_window')!r}; "
                                       f"only {COMPLETION_WINDOW!r} is supported.", param="completion_window", code="invalid_value")
        found = self._file_or_404(file_id)
        if isinstance(found, Response):
            return found
        if found.purpose != "batch":
            return error_response(400, f"File {file_id} has purpose {found.purpose!r}; a batch needs a file uploaded "
                                       "with purpose 'batch'.", param="input_file_id", code="invalid_value")
        metadata = payload.get("metadata")
        batch = self._new_batch(found, metadata if isinstance(metadata, dict) else None)
        self.batches[batch.id] = batch
        self.counts["submitted"] += 1
        if self.counts["submitted"] <= self.batch_config.late_create_replies:
            await asyncio.sleep(self.batch_config.late_reply_s)  # the batch exists; its reply is late
        return json_response(200, self._obj(batch, time.monotonic()))

    async def retrieve(self, req: Request) -> Outcome:
        batch = self.batches.get(req.params["batch_id"])
        if batch is None:
            return error_response(404, f"No batch found with id '{req.params['batch_id']}'.", code="batch_not_found")
        return json_response(200, self._obj(batch, time.monotonic()))

    async def cancel(self, req: Request) -> Outcome:
        batch = self.batches.get(req.params["batch_id"])
        if batch is None:
            return error_response(404, f"No batch found with id '{req.params['batch_id']}'.", code="batch_not_found")
        now = time.monotonic()
        status = self._advance(batch, now)
        if status in TERMINAL or status == "cancelling":
            return error_response(400, f"Cannot cancel a batch with status '{status}'.", code="invalid_state")
        batch.cancel_elapsed = batch.elapsed(now)
        batch.stamps["cancelling_at"] = int(time.time())
        self.counts["cancelled"] += 1
        return json_response(200, self._obj(batch, now))

    async def list_batches(self, req: Request) -> Outcome:
        query = req.query_params()
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            return error_response(400, f"Invalid 'limit': {query.get('limit')!r}; use 1 to {MAX_LISTED}.", param="limit")
        if not 1 <= limit <= MAX_LISTED:
            return error_response(400, f"Invalid 'limit': {limit}; use 1 to {MAX_LISTED}.", param="limit")
        newest_first = list(reversed(self.batches.values()))
        after = query.get("after")
        if after:
            ids = [b.id for b in newest_first]
            newest_first = newest_first[ids.index(after) + 1:] if after in ids else []
        page = newest_first[:limit]
        now = time.monotonic()
        data = [self._obj(b, now) for b in page]
        return json_response(200, {"object": "list", "data": data, "first_id": page[0].id if page else None,
                                   "last_id": page[-1].id if page else None, "has_more": len(newest_first) > limit})

    # --- answering the lines at creation -------------------------------------------------------

    def _new_batch(self, source: StoredFile, metadata: dict[str, Any] | None) -> SimBatch:
        cfg = self.batch_config
        number = len(self.batches)
        batch_id = f"batch_{secrets.token_hex(12)}"
        parsed, errors = validate_input(source.content, cfg.max_requests)
        models = {body["model"] for _, body in parsed}
        model = next(iter(models)) if len(models) == 1 else None
        if not errors and model is not None and cfg.enqueued_token_limit is not None:
            errors = self._check_enqueued(model, parsed, cfg.enqueued_token_limit)
        expires = False
        if not errors:
            draw = unit_draw(digest(self._seed, b"expire", str(number).encode()), 0)
            expires = number < cfg.expire_first or draw < cfg.expire_rate
        lines = [] if errors else self.lines.answer_lines(parsed)
        self.counts["lines"] += len(lines)
        if expires:
            self.lines.leave_unfinished(lines)
        if errors:
            self.counts["validation_failed"] += 1
        return SimBatch(batch_id, source.id, ENDPOINT, int(time.time()), time.monotonic(), cfg.seconds, lines, model,
                        metadata, validation_errors=errors, expires=expires,
                        input_tokens=sum(prompt_tokens(body) for _, body in parsed) if not errors else 0)


    def _check_enqueued(self, model: str, parsed: list[tuple[str, dict[str, Any]]], limit: int) -> list[dict[str, Any]]:
        now = time.monotonic()
        enqueued = sum(b.input_tokens for b in self.batches.values()
                       if b.model == model and self._advance(b, now) not in TERMINAL)
        wanted = sum(prompt_tokens(body) for _, body in parsed)
        if enqueued + wanted <= limit:
            return []
        return [{"code": "token_limit_exceeded", "param": None, "line": None,
                 "message": f"Enqueued token limit reached for {model} in organization org-simulator. Limit: {limit} "
                            f"enqueued tokens ({enqueued} enqueued, this batch {wanted}). Please try again once some "
                            "in_progress batches have been completed."}]


    def _advance(self, batch: SimBatch, now: float) -> str:
        """The batch's status at `now`; writes its files the first time it is terminal."""
        if batch.final_status is not None:
            return batch.final_status
        elapsed = batch.elapsed(now)
        if batch.cancel_elapsed is not None:
            if elapsed < batch.cancel_elapsed + batch.finalizing_s:
                return "cancelling"
            self._finish(batch, "cancelled", batch.lines_done(batch.cancel_elapsed))
            return "cancelled"
        if elapsed < batch.validating_s:
            return "validating"
        if batch.validation_errors:
            self._finish(batch, "failed", 0)
            return "failed"
        if elapsed < batch.validating_s + batch.in_progress_s:
            return "in_progress"
        if batch.expires:  # the window closes before finalizing starts
            self._finish(batch, "expired", len(batch.lines))
            return "expired"
        if elapsed < batch.seconds:
            return "finalizing"
        self._finish(batch, "completed", len(batch.lines))
        return "completed"

    def _finish(self, batch: SimBatch, status: str, done: int) -> None:
        """Write the output and error files. Lines past `done` (cancelled before their turn) and
        lines an expiring batch never reached get an error line saying so."""
        output, errors = [], []
        for i, line in enumerate(batch.lines):
            if i >= done or line.outcome == "unfinished":
                code, message = (("batch_expired", "This request could not be executed before the completion window expired.")
                                 if status == "expired" else
                                 ("batch_cancelled", "The batch was cancelled before this request executed."))
                self.counts["lines_expired" if status == "expired" else "lines_cancelled"] += 1
                errors.append({"id": line.record["id"], "custom_id": line.custom_id, "response": None,
                               "error": {"code": code, "message": message}})
            elif line.outcome == "ok":
                self.counts["lines_ok"] += 1
                output.append(line.record)
            else:
                self.counts["lines_failed"] += 1
                errors.append(line.record)
        if output:
            batch.output_file_id = self._store(f"{batch.id}_output.jsonl", "batch_output", _jsonl(output)).id
        if errors:
            batch.error_file_id = self._store(f"{batch.id}_error.jsonl", "batch_output", _jsonl(errors)).id
        batch.stamps[f"{status}_at"] = int(time.time())
        batch.final_status = status

    def _obj(self, batch: SimBatch, now: float) -> dict[str, Any]:
        status = self._advance(batch, now)
        elapsed = batch.elapsed(now)
        if status in ("cancelling", "cancelled"):
            done = batch.lines_done(batch.cancel_elapsed or 0.0)
        elif status in ("validating", "failed"):
            done = 0
        else:
            done = batch.lines_done(elapsed)
        finished = batch.lines[:done]
        completed = sum(1 for line in finished if line.outcome == "ok")
        failed = sum(1 for line in finished if line.outcome == "error")
        if status in ("expired", "cancelled"):
            failed = len(batch.lines) - completed
        stamps = dict(batch.stamps)
        created = batch.created_at
        if not batch.validation_errors and elapsed >= batch.validating_s:
            stamps.setdefault("in_progress_at", created + int(batch.validating_s))
        if status in ("finalizing", "completed"):
            stamps.setdefault("finalizing_at", created + int(batch.validating_s + batch.in_progress_s))
        usage = [sum(line.usage[k] for line in finished if line.outcome == "ok") for k in range(4)]
        errors = {"object": "list", "data": batch.validation_errors} if batch.validation_errors else None
        return {
            "id": batch.id, "object": "batch", "endpoint": batch.endpoint, "model": batch.model, "errors": errors,
            "input_file_id": batch.input_file_id, "completion_window": COMPLETION_WINDOW, "status": status,
            "output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id,
            "created_at": created, "expires_at": created + 24 * 3600,
            "in_progress_at": stamps.get("in_progress_at"), "finalizing_at": stamps.get("finalizing_at"),
            "completed_at": stamps.get("completed_at"), "failed_at": stamps.get("failed_at"),
            "expired_at": stamps.get("expired_at"), "cancelling_at": stamps.get("cancelling_at"),
            "cancelled_at": stamps.get("cancelled_at"),
            "request_counts": {"total": len(batch.lines), "completed": completed, "failed": failed},
            "usage": {"input_tokens": usage[0], "input_tokens_details": {"cached_tokens": usage[1]},
                      "output_tokens": usage[2], "output_tokens_details": {"reasoning_tokens": usage[3]},
                      "total_tokens": usage[0] + usage[2]},
            "metadata": batch.metadata,
        }



def _jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for r in records)


__all__ = ["BatchAPI", "BatchSimConfig"]
