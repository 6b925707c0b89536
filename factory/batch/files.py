"""Batch API files: writing requests as input JSONL (split by the API's limits), and reading
output and error lines back.

An input line is `{"custom_id": KEY, "method": "POST", "url": "/v1/chat/completions", "body":
{...}}` where KEY is the ledger's request hash and the body is exactly what the online engine
sends (`model`, `messages`, then every parameter), so a request costs the same key either way.

An output/error line is `{"custom_id", "response": {"status_code", "body"} | null, "error":
{"code", "message"} | null}`. `read_line` turns one into a `LineResult`: an answer, or a
failure that says whether sending the request again may help (server errors, rate limits,
timeouts, and lines the batch never reached: expired or cancelled) or not (400-class refusals).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from factory.engine.completion import read_completion
from factory.errors import RequestError
from factory.engine.retry import MalformedResponse
from schemas import Usage

if TYPE_CHECKING:
    from factory.engine import ChatRequest

ENDPOINT = "/v1/chat/completions"
# The API's limits per input file.
MAX_REQUESTS_PER_FILE = 50_000
MAX_FILE_BYTES = 200_000_000  # "200 MB"; decimal, the smaller reading
RETRYABLE_STATUSES = frozenset({408, 409, 429})
# Line error codes for requests that never ran (or timed out): sending them again may succeed.
RETRYABLE_CODES = frozenset({"batch_expired", "batch_cancelled", "request_timeout", "rate_limit_exceeded"})


def request_body(request: ChatRequest) -> dict[str, Any]:
    """The chat completion body, as the engine sends it online."""
    return {"model": request.model, "messages": request.messages, **request.params}


def input_line(request: ChatRequest) -> bytes:
    line = {"custom_id": request.key, "method": "POST", "url": ENDPOINT, "body": request_body(request)}
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


@dataclass
class InputFile:
    """One input file: its requests (one model) and its JSONL bytes."""

    model: str
    requests: list[ChatRequest]
    data: bytes

    @property
    def keys(self) -> list[str]:
        return [r.key for r in self.requests]


def split_into_files(requests: Sequence[ChatRequest], *, max_requests: int, max_bytes: int) -> list[InputFile]:
    """Input files of at most `max_requests` lines and `max_bytes` bytes, one model each, in the
    order given. A single request larger than `max_bytes` cannot be sent: RequestError."""
    by_model: dict[str, list[ChatRequest]] = {}
    for r in requests:
        by_model.setdefault(r.model, []).append(r)
    files: list[InputFile] = []
    for model, group in by_model.items():
        chunk: list[ChatRequest] = []
        parts: list[bytes] = []
        size = 0
        for r in group:
            line = input_line(r)
            if len(line) > max_bytes:
                raise RequestError(
                    f"request {r.key[:12]} ({r.stage}) is {len(line)} bytes as a batch line, over the "
                    f"{max_bytes}-byte file limit: shorten its messages or raise the batch file limit"
                )
            if chunk and (len(chunk) >= max_requests or size + len(line) > max_bytes):
                files.append(InputFile(model, chunk, b"".join(parts)))
                chunk, parts, size = [], [], 0
            chunk.append(r)
            parts.append(line)
            size += len(line)
        if chunk:
            files.append(InputFile(model, chunk, b"".join(parts)))
    return files


@dataclass
class LineResult:
    custom_id: str
    ok: bool
    retryable: bool = False  # a failure that sending again may cure
    content: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None  # None: not billed
    error: str | None = None


def read_lines(text: str) -> list[LineResult]:
    """Every readable line of an output or error file. A line that is not JSON or has no
    custom_id cannot be mapped to a request: skipped (its request counts as unanswered)."""
    results = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            continue
        if isinstance(item, dict) and isinstance(item.get("custom_id"), str):
            results.append(read_line(item))
    return results


def read_line(item: dict[str, Any]) -> LineResult:
    custom_id = item["custom_id"]
    error = item.get("error")
    response = item.get("response")
    if isinstance(error, dict) and error:
        code = str(error.get("code") or "error")
        return LineResult(custom_id, ok=False, retryable=code in RETRYABLE_CODES,
                          error=f"batch line {code}: {error.get('message') or ''}".rstrip(": "))
    if not isinstance(response, dict):
        return LineResult(custom_id, ok=False, retryable=True, error="batch line without a response or an error")
    status = response.get("status_code")
    body = response.get("body")
    if status != 200:
        code, message = _error_of(body)
        retryable = isinstance(status, int) and (status in RETRYABLE_STATUSES or status >= 500)
        where = f"HTTP {status}" + (f" {code}" if code else "")
        return LineResult(custom_id, ok=False, retryable=retryable, error=f"{where}: {message}")
    return _read_completion(custom_id, body)


def _error_of(body: Any) -> tuple[str | None, str]:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return (str(err["code"]) if err.get("code") else None), str(err.get("message") or "")
    return None, json.dumps(body)[:200] if body is not None else "no body"


def _read_completion(custom_id: str, body: Any) -> LineResult:
    """A batch line's chat completion, read as the engine reads an online answer."""
    try:
        reply = read_completion(body)
    except MalformedResponse as e:
        return LineResult(custom_id, ok=False, retryable=True, usage=e.usage, error=f"unreadable answer: {e}")
    return LineResult(custom_id, ok=True, content=reply.content, finish_reason=reply.finish_reason,
                      usage=reply.usage, error=reply.error)
