"""The lines of a simulated batch: validating an input file, and answering each line when the
batch is created, by the same `parse_chat`/`ChatAnswerer` as /v1/chat/completions (see batches.py
for how answers and faults are drawn)."""

from __future__ import annotations

import json
import random
import time
from typing import Any

from . import faults, schema_json
from .batch_config import BatchSimConfig
from .batch_records import Line
from .chat import Attempts, ChatAnswerer, completion_body, digest, parse_chat, unit_draw
from .config import SimConfig
from .errors import InvalidRequest
from .tokens import PrefixCache, prompt_pieces

ENDPOINT = "/v1/chat/completions"
MAX_VALIDATION_ERRORS = 50


def validate_input(content: bytes, max_requests: int) -> tuple[list[tuple[str, dict[str, Any]]], list[dict[str, Any]]]:
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
    if len(rows) > max_requests:
        fail("too_many_requests", f"The input file has {len(rows)} requests; a batch may hold at most "
                                  f"{max_requests}.", None)
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


class LineAnswerer:
    """Answers batch lines; attempts count per (custom_id, body) over all batches."""

    def __init__(self, config: SimConfig, batch_config: BatchSimConfig) -> None:
        self.config = config
        self.batch_config = batch_config
        self.answerer = ChatAnswerer(config)
        self.cache = PrefixCache(config.cache_ttl_s)
        self.attempts = Attempts()
        self._seed = str(config.seed).encode()

    def answer_lines(self, parsed: list[tuple[str, dict[str, Any]]]) -> list[Line]:
        lines = []
        for custom_id, body in parsed:
            lines.append(self.answer_line(custom_id, body))
        return lines

    def answer_line(self, custom_id: str, body: dict[str, Any]) -> Line:
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

    def leave_unfinished(self, lines: list[Line]) -> None:
        """An expiring batch: exactly round(share * n) lines, chosen by seeded draws, get no answer."""
        count = round(self.batch_config.expire_share * len(lines))
        ranked = sorted(range(len(lines)), key=lambda i: digest(self._seed, b"unfinished", lines[i].custom_id.encode()))
        for i in ranked[:count]:
            lines[i].outcome = "unfinished"
            lines[i].usage = (0, 0, 0, 0)

    # --- the lifecycle ------------------------------------------------------------------------


def prompt_tokens(body: dict[str, Any]) -> int:
    """Prompt tokens of a line's body, as /v1/chat/completions counts them (0 when it is invalid)."""
    try:
        chat = parse_chat(body)
    except InvalidRequest:
        return 0
    return len(prompt_pieces(chat.messages, chat.tools_text))
