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
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from . import faults, schema_json
from .chat import Attempts, ChatAnswerer, digest, unit_draw, completion_body, parse_chat
from .config import SimConfig, SimConfigError
from .errors import InvalidRequest, error_response
from .httpserver import Handler, Outcome, Request, Response, json_response
from .tokens import PrefixCache, prompt_pieces

COMPLETION_WINDOW = "24h"
ENDPOINT = "/v1/chat/completions"
FILE_PURPOSES = frozenset({"batch", "fine-tune", "assistants", "vision", "user_data", "evals"})
# Shares of `seconds` spent validating and finalizing (in_progress takes the rest); cancelling
# takes as long as finalizing.
VALIDATING_SHARE = 0.1
FINALIZING_SHARE = 0.1
MAX_LISTED = 100
MAX_VALIDATION_ERRORS = 50
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(frozen=True)
class BatchSimConfig:
    """How the simulated Batch API behaves. Checked when built."""

    seconds: float = 2.0  # creation to completion (the real API takes up to 24 h)
    fail_rate: float = 0.0  # share of line attempts that end as a 500 in the error file
    fail_custom_ids: frozenset[str] = frozenset()  # these lines fail their first attempt
    expire_rate: float = 0.0  # chance that a batch runs out of time
    expire_first: int = 0  # the first N batches created run out of time (for tests)
    expire_share: float = 0.5  # share of an expiring batch's lines left unfinished
    max_requests: int = 50_000  # lines per input file (the API's limit)
    max_file_bytes: int = 200 * 1024 * 1024  # bytes per input file (the API's limit)
    # Prompt tokens a model may have in unfinished batches at once (OpenAI's "enqueued token
    # limit", per organisation and model); a batch over it fails with token_limit_exceeded.
    enqueued_token_limit: int | None = None

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise SimConfigError(f"batch seconds is {self.seconds}; use >= 0 (e.g. 2 for a two-second batch)")
        for name in ("fail_rate", "expire_rate", "expire_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise SimConfigError(f"batch {name} is {value}; use a share between 0 and 1")
        if self.expire_first < 0:
            raise SimConfigError(f"batch expire_first is {self.expire_first}; use 0 or more batches")
        if self.max_requests < 1 or self.max_file_bytes < 1:
            raise SimConfigError("batch max_requests and max_file_bytes must be at least 1")
        if self.enqueued_token_limit is not None and self.enqueued_token_limit < 1:
            raise SimConfigError("batch enqueued_token_limit must be at least 1 (or None: no limit)")
        object.__setattr__(self, "fail_custom_ids", frozenset(self.fail_custom_ids))


def add_batch_arguments(p: argparse.ArgumentParser) -> None:
    """The Batch API's flags, for the simulator's command line."""
    g = p.add_argument_group("batch API")
    g.add_argument("--batch-seconds", type=float, default=2.0,
                   help="seconds from a batch's creation to its completion (default 2; the real API takes up to 24 h)")
    g.add_argument("--batch-fail-rate", type=float, default=0.0,
                   help="share of batch lines answered with an error line (default 0)")
    g.add_argument("--batch-expire-rate", type=float, default=0.0,
                   help="chance that a batch expires with some lines unfinished (default 0)")
    g.add_argument("--batch-expire-share", type=float, default=0.5,
                   help="share of an expiring batch's lines left unfinished (default 0.5)")
    g.add_argument("--batch-max-requests", type=int, default=50_000, help="lines per input file (default 50000)")
    g.add_argument("--batch-enqueued-tokens", type=int, default=None,
                   help="prompt tokens a model may have in unfinished batches (default: no limit)")


def batch_config_from_args(args: argparse.Namespace) -> BatchSimConfig:
    return BatchSimConfig(
        seconds=args.batch_seconds, fail_rate=args.batch_fail_rate, expire_rate=args.batch_expire_rate,
        expire_share=args.batch_expire_share, max_requests=args.batch_max_requests,
        enqueued_token_limit=args.batch_enqueued_tokens,
    )


# ---------------------------------------------------------------------------------------------
# Records


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def obj(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": len(self.content), "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed",
                "expires_at": None, "status_details": None}


@dataclass
class Line:
    """One request line, answered at creation. outcome: "ok", "error" (an error-file line) or
    "unfinished" (left over when the batch expires)."""

    custom_id: str
    outcome: str
    record: dict[str, Any]  # the output- or error-file line
    usage: tuple[int, int, int, int] = (0, 0, 0, 0)  # prompt, cached, completion, reasoning


@dataclass
class SimBatch:
    id: str
    input_file_id: str
    endpoint: str
    created_at: int  # wall clock, for the API's timestamps
    started: float  # monotonic, for the lifecycle
    seconds: float
    lines: list[Line]
    model: str | None
    metadata: dict[str, Any] | None
    validation_errors: list[dict[str, Any]] = field(default_factory=list)
    expires: bool = False
    input_tokens: int = 0  # prompt tokens of its answered lines (what the enqueued limit counts)
    cancel_elapsed: float | None = None  # seconds after creation when cancel was asked
    final_status: str | None = None  # set once the files exist
    output_file_id: str | None = None
    error_file_id: str | None = None
    stamps: dict[str, int] = field(default_factory=dict)

    def elapsed(self, now: float) -> float:
        return now - self.started

    @property
    def validating_s(self) -> float:
        return self.seconds * VALIDATING_SHARE

    @property
    def finalizing_s(self) -> float:
        return self.seconds * FINALIZING_SHARE

    @property
    def in_progress_s(self) -> float:
        return self.seconds - self.validating_s - self.finalizing_s

    def lines_done(self, elapsed: float) -> int:
        """How many lines (in file order) have an answer after `elapsed` seconds."""
        if self.validation_errors or elapsed < self.validating_s:
            return 0
        if self.in_progress_s <= 0:
            return len(self.lines)
        share = min(1.0, (elapsed - self.validating_s) / self.in_progress_s)
        return int(len(self.lines) * share)


# ---------------------------------------------------------------------------------------------
# The API


class BatchAPI:
    """The files and batches of one simulator, in memory."""

    def __init__(self, config: SimConfig, batch_config: BatchSimConfig | None = None) -> None:
        self.config = config
        self.batch_config = batch_config or BatchSimConfig()
        self.answerer = ChatAnswerer(config)
        self.cache = PrefixCache(config.cache_ttl_s)
        self.attempts = Attempts()
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
        parsed, errors = self._validate(source.content)
        models = {body["model"] for _, body in parsed}
        model = next(iter(models)) if len(models) == 1 else None
        if not errors and model is not None and cfg.enqueued_token_limit is not None:
            errors = self._check_enqueued(model, parsed, cfg.enqueued_token_limit)
        expires = False
        if not errors:
            draw = unit_draw(digest(self._seed, b"expire", str(number).encode()), 0)
            expires = number < cfg.expire_first or draw < cfg.expire_rate
        lines = [] if errors else self._answer_lines(parsed)
        if expires:
            self._leave_unfinished(lines)
        if errors:
            self.counts["validation_failed"] += 1
        return SimBatch(batch_id, source.id, ENDPOINT, int(time.time()), time.monotonic(), cfg.seconds, lines, model,
                        metadata, validation_errors=errors, expires=expires,
                        input_tokens=sum(_prompt_tokens(body) for _, body in parsed) if not errors else 0)

    def _validate(self, content: bytes) -> tuple[list[tuple[str, dict[str, Any]]], list[dict[str, Any]]]:
        """The (custom_id, body) of every line, or the errors that fail the whole batch."""
        parsed: list[tuple[str, dict[str, Any]]] = []
        errors: list[dict[str, Any]] = []
        seen: set[str] = set()

        def fail(code: str, message: str, line: int | None, param: str | None = None) -> None:
            if len(errors) < MAX_VALIDATION_ERRORS:
                errors.append({"code": code, "message": message, "param": param, "line": line})

        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            fail("invalid_encoding", "The input file is not UTF-8 text.", None)
            return [], errors
        rows = [(i, raw) for i, raw in enumerate(text.splitlines(), start=1) if raw.strip()]
        if not rows:
            fail("empty_file", "The input file has no request lines.", None)
        if len(rows) > self.batch_config.max_requests:
            fail("too_many_requests", f"The input file has {len(rows)} requests; a batch may hold at most "
                                      f"{self.batch_config.max_requests}.", None)
        for number, raw in rows:
            try:
                item = json.loads(raw)
            except ValueError:
                fail("invalid_json_line", "This line is not valid JSON.", number)
                continue
            if not isinstance(item, dict):
                fail("invalid_json_line", "This line is not a JSON object.", number)
                continue
            custom_id, body = item.get("custom_id"), item.get("body")
            if not isinstance(custom_id, str) or not custom_id:
                fail("missing_required_parameter", "Missing 'custom_id' (a non-empty string).", number, "custom_id")
                continue
            if custom_id in seen:
                fail("duplicate_custom_id", f"The custom_id {custom_id!r} is used more than once; custom_ids must be unique.",
                     number, "custom_id")
                continue
            seen.add(custom_id)
            if item.get("method") != "POST":
                fail("invalid_method", "'method' must be \"POST\".", number, "method")
            if item.get("url") != ENDPOINT:
                fail("mismatched_url", f"'url' is {item.get('url')!r}; every line must use the batch's endpoint {ENDPOINT}.",
                     number, "url")
            if not isinstance(body, dict) or not isinstance(body.get("model"), str):
                fail("missing_required_parameter", "Missing 'body' (an object with a 'model').", number, "body")
                continue
            parsed.append((custom_id, body))
        models = sorted({body["model"] for _, body in parsed})
        if len(models) > 1:
            fail("mismatched_model", f"The input file uses several models ({', '.join(models)}); "
                                     "one batch serves one model.", None, "body.model")
        return parsed, errors

    def _check_enqueued(self, model: str, parsed: list[tuple[str, dict[str, Any]]], limit: int) -> list[dict[str, Any]]:
        now = time.monotonic()
        enqueued = sum(b.input_tokens for b in self.batches.values()
                       if b.model == model and self._advance(b, now) not in TERMINAL)
        wanted = sum(_prompt_tokens(body) for _, body in parsed)
        if enqueued + wanted <= limit:
            return []
        return [{"code": "token_limit_exceeded", "param": None, "line": None,
                 "message": f"Enqueued token limit reached for {model} in organization org-simulator. Limit: {limit} "
                            f"enqueued tokens ({enqueued} enqueued, this batch {wanted}). Please try again once some "
                            "in_progress batches have been completed."}]

    def _answer_lines(self, parsed: list[tuple[str, dict[str, Any]]]) -> list[Line]:
        lines = []
        for custom_id, body in parsed:
            lines.append(self._answer_line(custom_id, body))
            self.counts["lines"] += 1
        return lines

    def _answer_line(self, custom_id: str, body: dict[str, Any]) -> Line:
        raw = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
        body_key = digest(self._seed, raw)
        attempt = self.attempts.next(digest(body_key, custom_id.encode()))
        draw = digest(self._seed, body_key, custom_id.encode(), attempt.to_bytes(8, "little"))
        request_id = draw.hex()
        try:
            chat = parse_chat(body)
            forced_spec = faults.find_trigger(chat.last_user_text)
            forced = faults.parse_forced(forced_spec) if forced_spec else None
        except (InvalidRequest, faults.FaultSpecError) as exc:
            param = exc.param if isinstance(exc, InvalidRequest) else None
            code = exc.code if isinstance(exc, InvalidRequest) else "invalid_value"
            return self._error_line(custom_id, request_id, 400, str(exc), "invalid_request_error", param, code)
        if self.config.models and chat.model not in self.config.models:
            return self._error_line(custom_id, request_id, 404, f"The model `{chat.model}` does not exist or you do not "
                                    "have access to it.", "invalid_request_error", "model", "model_not_found")
        if forced is not None:
            fault = forced.kind if forced.applies(attempt) else None
        elif custom_id in self.batch_config.fail_custom_ids and attempt == 0:
            fault = "500"
        else:
            fault = "500" if unit_draw(draw, 0) < self.batch_config.fail_rate else None
        if fault in ("drop", "hang"):
            return Line(custom_id, "error", {"id": f"batch_req_{request_id[:24]}", "custom_id": custom_id, "response": None,
                                             "error": {"code": "request_timeout",
                                                       "message": "The underlying call to the model timed out. (simulated fault)"}})
        if fault is not None and fault not in ("length", "none"):
            status = 500 if fault == "malformed" else int(fault)
            kind = "requests" if status == 429 else "server_error"
            code = "rate_limit_exceeded" if status == 429 else None
            return self._error_line(custom_id, request_id, status,
                                    f"The server had an error processing this request (simulated {fault}).", kind, None, code)

        content_key = digest(body_key, attempt.to_bytes(8, "little")) if chat.sampled else body_key
        r = random.Random(int.from_bytes(content_key[:8], "little"))
        try:
            choices = self.answerer.choices(chat, r, force_length=fault == "length")
        except schema_json.SchemaError as exc:
            return self._error_line(custom_id, request_id, 400, f"Invalid schema for response_format: {exc}.",
                                    "invalid_request_error", "response_format", "invalid_json_schema")
        pieces = prompt_pieces(chat.messages, chat.tools_text)
        cached = self.cache.lookup_and_store(chat.model, pieces, time.monotonic())
        completion = completion_body(chat.model, choices, len(pieces), cached, request_id)
        usage = completion["usage"]
        return Line(
            custom_id, "ok",
            {"id": f"batch_req_{request_id[:24]}", "custom_id": custom_id,
             "response": {"status_code": 200, "request_id": f"req_{request_id}", "body": completion}, "error": None},
            (usage["prompt_tokens"], cached, usage["completion_tokens"],
             usage["completion_tokens_details"]["reasoning_tokens"]),
        )

    def _error_line(self, custom_id: str, request_id: str, status: int, message: str, type_: str,
                    param: str | None, code: str | None) -> Line:
        body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        return Line(custom_id, "error", {"id": f"batch_req_{request_id[:24]}", "custom_id": custom_id,
                                         "response": {"status_code": status, "request_id": f"req_{request_id}", "body": body},
                                         "error": None})

    def _leave_unfinished(self, lines: list[Line]) -> None:
        """An expiring batch: exactly round(share * n) lines, chosen by seeded draws, get no answer."""
        count = round(self.batch_config.expire_share * len(lines))
        ranked = sorted(range(len(lines)), key=lambda i: digest(self._seed, b"unfinished", lines[i].custom_id.encode()))
        for i in ranked[:count]:
            lines[i].outcome = "unfinished"
            lines[i].usage = (0, 0, 0, 0)

    # --- the lifecycle ------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Helpers


@dataclass(frozen=True)
class Part:
    data: bytes
    filename: str | None  # None: a plain form field


def parse_multipart(content_type: str, body: bytes) -> dict[str, Part]:
    """The parts of a multipart/form-data body, by field name. InvalidRequest when malformed."""
    kind, _, rest = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        raise InvalidRequest("Uploads must be multipart/form-data (with 'purpose' and 'file' fields).", None, "invalid_content_type")
    boundary = None
    for param in rest.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary":
            boundary = value.strip().strip('"')
    if not boundary:
        raise InvalidRequest("The multipart Content-Type has no boundary.", None, "invalid_content_type")
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise InvalidRequest("The multipart body is cut short (no closing boundary).", None, "invalid_multipart")
    parts: dict[str, Part] = {}
    for chunk in chunks[1:-1]:
        if not chunk.startswith(b"\r\n") or not chunk.endswith(b"\r\n"):
            raise InvalidRequest("A multipart part is malformed (expected CRLF around each part).", None, "invalid_multipart")
        head, sep, data = chunk[2:-2].partition(b"\r\n\r\n")
        if not sep:
            raise InvalidRequest("A multipart part has no header/body separator.", None, "invalid_multipart")
        disposition = ""
        for header in head.decode("utf-8", "replace").split("\r\n"):
            hname, _, hvalue = header.partition(":")
            if hname.strip().lower() == "content-disposition":
                disposition = hvalue
        name, filename = _disposition_params(disposition)
        if name is None:
            raise InvalidRequest("A multipart part has no Content-Disposition name.", None, "invalid_multipart")
        parts[name] = Part(data, filename)
    return parts


def _disposition_params(value: str) -> tuple[str | None, str | None]:
    name = filename = None
    for param in value.split(";")[1:]:
        key, _, raw = param.strip().partition("=")
        text = raw.strip()
        if text.startswith('"') and text.endswith('"'):
            text = text[1:-1].replace('\\"', '"')
        if key.lower() == "name":
            name = text
        elif key.lower() == "filename":
            filename = text
    return name, filename


def _prompt_tokens(body: dict[str, Any]) -> int:
    """Prompt tokens of a line's body, as /v1/chat/completions counts them (0 when it is invalid)."""
    try:
        chat = parse_chat(body)
    except InvalidRequest:
        return 0
    return len(prompt_pieces(chat.messages, chat.tools_text))


def _jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for r in records)


__all__ = ["BatchAPI", "BatchSimConfig", "add_batch_arguments", "batch_config_from_args", "parse_multipart"]
