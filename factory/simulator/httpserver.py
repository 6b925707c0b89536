"""A small HTTP/1.1 server on asyncio protocols: keep-alive, Content-Length bodies, routing.

Hand-written rather than on a framework because the simulator needs full control of the
connection (close it without an answer, never answer, send a broken body) and must be fast:
one request costs a header split and a dict lookup before the handler runs. Chunked request
bodies are refused (411: the OpenAI clients always send Content-Length).

A handler gets a `Request` and returns a `Response`, or `DROP` / `HANG`. Each connection has
one task that answers its requests in order (HTTP/1.1 pipelining order); the tasks live in a
task group owned by `serve`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
# Parsed requests waiting on one connection before reading pauses (pipelining back-pressure).
MAX_QUEUED = 16


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes = b""
    keep_alive: bool = True
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern

    def query_params(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.query).items()}


@dataclass
class Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"

    def encode(self, keep_alive: bool) -> bytes:
        head = [f"HTTP/1.1 {self.status} {_reason(self.status)}\r\n"
                f"content-type: {self.content_type}\r\ncontent-length: {len(self.body)}\r\n"]
        head += [f"{name}: {value}\r\n" for name, value in self.headers]
        if not keep_alive:
            head.append("connection: close\r\n")
        head.append("\r\n")
        return "".join(head).encode("latin-1") + self.body


class ConnectionAction:
    """Something other than an answer: `DROP` closes the connection, `HANG` never answers."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


DROP = ConnectionAction("DROP")
HANG = ConnectionAction("HANG")

Outcome = Response | ConnectionAction
Handler = Callable[[Request], Awaitable[Outcome]]


def json_response(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(status, body, headers or [])


_REASONS: dict[int, str] = {}


def _reason(status: int) -> str:
    reason = _REASONS.get(status)
    if reason is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        _REASONS[status] = reason
    return reason


class Router:
    """Exact paths by dict lookup; patterns like "/v1/batches/{batch_id}/cancel" by segments."""

    def __init__(self) -> None:
        self._exact: dict[tuple[str, str], Handler] = {}
        self._patterns: list[tuple[str, list[str], Handler]] = []
        self._paths: set[str] = set()

    def add(self, method: str, path: str, handler: Handler) -> None:
        if "{" in path:
            self._patterns.append((method, path.strip("/").split("/"), handler))
        else:
            self._exact[(method, path)] = handler
            self._paths.add(path)

    def match(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], bool]:
        """(handler, params, path_known): path_known tells 404 from 405."""
        handler = self._exact.get((method, path))
        if handler is not None:
            return handler, {}, True
        known = path in self._paths
        segments = path.strip("/").split("/")
        for pattern_method, pattern, pattern_handler in self._patterns:
            params = _match_segments(pattern, segments)
            if params is None:
                continue
            if pattern_method == method:
                return pattern_handler, params, True
            known = True
        return None, {}, known


def _match_segments(pattern: list[str], segments: list[str]) -> dict[str, str] | None:
    if len(pattern) != len(segments):
        return None
    params: dict[str, str] = {}
    for want, got in zip(pattern, segments):
        if want.startswith("{") and want.endswith("}"):
            if not got:
                return None
            params[want[1:-1]] = got
        elif want != got:
            return None
    return params


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _parse_head(head: bytes) -> tuple[Request, int]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _HttpError(400, f"malformed request line {lines[0][:100]!r}")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name[-1] in " \t":
            raise _HttpError(400, f"malformed header line {line[:100]!r}")
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise _HttpError(411, "chunked request bodies are not supported; send the body with Content-Length")
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise _HttpError(400, f"bad Content-Length {length_text!r}")
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    path, _, query = target.partition("?")
    return Request(method, path, query, headers, keep_alive=keep_alive), int(length_text)


class HttpConnection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._buffer = bytearray()
        self._pending: tuple[Request, int] | None = None  # head parsed, body incomplete
        self._queue: deque[Request | _HttpError] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._broken = False
        self._paused = False
        self.transport: asyncio.Transport | None = None

    # --- protocol callbacks (event loop) ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._server.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        if self._broken:
            return
        self._buffer += data
        while True:
            if self._pending is None:
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buffer) > MAX_HEAD_BYTES:
                        self._reject(_HttpError(431, f"request head over {MAX_HEAD_BYTES} bytes"))
                    return
                head = bytes(self._buffer[:end])
                del self._buffer[: end + 4]
                try:
                    request, length = _parse_head(head)
                except _HttpError as exc:
                    self._reject(exc)
                    return
                if length > self._server.max_body_bytes:
                    self._reject(_HttpError(413, f"body of {length} bytes is over the limit of {self._server.max_body_bytes}"))
                    return
                self._pending = (request, length)
            request, length = self._pending
            if len(self._buffer) < length:
                return
            request.body = bytes(self._buffer[:length])
            del self._buffer[:length]
            self._pending = None
            self._enqueue(request)
            if len(self._queue) >= MAX_QUEUED and not self._paused and self.transport is not None:
                self._paused = True
                self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        return None  # let the transport close; queued answers are dropped with it

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._lost.done():
            self._lost.set_result(None)
        self._wake()
        self._server.connection_closed(self)

    # --- the connection's task -----------------------------------------------------------

    async def serve(self) -> None:
        transport = self.transport
        assert transport is not None
        try:
            while True:
                if not self._queue:
                    if self._lost.done():
                        return
                    self._wakeup = asyncio.get_running_loop().create_future()
                    await self._wakeup
                    continue
                item = self._queue.popleft()
                if self._paused and len(self._queue) < MAX_QUEUED // 2:
                    self._paused = False
                    transport.resume_reading()
                if isinstance(item, _HttpError):
                    transport.write(json_response(item.status, _error_body(item.message)).encode(keep_alive=False))
                    transport.close()
                    return
                try:
                    outcome = await self._server.dispatch(item)
                except Exception:
                    log.exception("simulator: handler failed on %s %s", item.method, item.path)
                    outcome = json_response(500, {"error": {
                        "message": "The simulator failed on this request (a bug in the simulator; see its log).",
                        "type": "server_error", "param": None, "code": None}})
                if self._lost.done():
                    return
                if outcome is DROP:
                    transport.close()
                    return
                if outcome is HANG:
                    await self._lost
                    return
                assert isinstance(outcome, Response)
                transport.write(outcome.encode(item.keep_alive))
                if not item.keep_alive:
                    transport.close()
                    return
        except BaseException:
            transport.abort()  # cancelled at shutdown: drop the connection at once
            raise

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _enqueue(self, item: Request | _HttpError) -> None:
        self._queue.append(item)
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _reject(self, error: _HttpError) -> None:
        self._broken = True
        self._enqueue(error)


def _error_body(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}


class HttpServer:
    """Binds, accepts, runs one task per connection in a task group, shuts down on `stop`."""

    def __init__(self, dispatch: Handler, max_body_bytes: int) -> None:
        self.dispatch = dispatch
        self.max_body_bytes = max_body_bytes
        self._connections: set[HttpConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._group: asyncio.TaskGroup | None = None
        self.connections_total = 0

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def connection_opened(self, conn: HttpConnection) -> None:
        assert self._group is not None
        self._connections.add(conn)
        self.connections_total += 1
        task = self._group.create_task(conn.serve())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def connection_closed(self, conn: HttpConnection) -> None:
        self._connections.discard(conn)

    async def serve(self, host: str, port: int, on_ready: Callable[[int], None], stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        # Bind first (an OSError such as "address in use" surfaces as itself), serve inside the group.
        server = await loop.create_server(lambda: HttpConnection(self), host, port, backlog=2048, start_serving=False)
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                await server.start_serving()
                on_ready(server.sockets[0].getsockname()[1])
                try:
                    await stop.wait()
                finally:
                    server.close()
                    # Cancelling ends every connection task, hung and sleeping ones included.
                    for task in list(self._tasks):
                        task.cancel()
                    for conn in list(self._connections):
                        conn.abort()
        finally:
            server.close()
            self._group = None
