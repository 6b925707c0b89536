"""The simulator's HTTP/1.1 layer over a raw socket: keep-alive, pipelining, bad input."""

import json
import socket

import pytest

from factory.simulator import SimConfig, run_simulator
from factory.simulator.httpserver import Router


def address(base_url: str) -> tuple[str, int]:
    host, port = base_url.removeprefix("http://").split("/")[0].split(":")
    return host, int(port)


def exchange(base_url: str, raw: bytes) -> bytes:
    """Send `raw`, read until the server closes (or 2 s pass)."""
    with socket.create_connection(address(base_url), timeout=2) as s:
        s.sendall(raw)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks)


def post(body: bytes, extra: str = "", version: str = "HTTP/1.1") -> bytes:
    return (f"POST /v1/chat/completions {version}\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n{extra}\r\n").encode() + body


def chat_body(text: str) -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": text}], "max_tokens": 3, "temperature": 0}).encode()


@pytest.fixture(scope="module")
def sim():
    with run_simulator(SimConfig(max_body_bytes=4096)) as base_url:
        yield base_url


def test_pipelined_requests_are_answered_in_order_and_close_is_honoured(sim):
    raw = post(chat_body("first")) + post(chat_body("second")) + post(chat_body("third"), "connection: close\r\n")
    reply = exchange(sim, raw)
    assert reply.count(b"HTTP/1.1 200 OK") == 3
    assert reply.rstrip().endswith(b"}")  # the server closed after the third answer
    single = [json.loads(exchange(sim, post(chat_body(t), "connection: close\r\n")).split(b"\r\n\r\n", 1)[1])
              for t in ("first", "second", "third")]
    bodies = [json.loads(part.split(b"\r\n\r\n", 1)[1].split(b"HTTP/1.1")[0]) for part in reply.split(b"HTTP/1.1 200 OK")[1:]]
    assert [b["choices"][0]["message"]["content"] for b in bodies] == [b["choices"][0]["message"]["content"] for b in single]


def test_http_1_0_closes_after_the_answer(sim):
    reply = exchange(sim, post(chat_body("x"), version="HTTP/1.0"))
    assert reply.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in reply


@pytest.mark.parametrize("raw, status", [
    (b"GARBAGE\r\n\r\n", b"400"),
    (b"POST /v1/chat/completions HTTP/1.1\r\nbad header line\r\n\r\n", b"400"),
    (b"POST /v1/chat/completions HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n", b"411"),
    (post(b"x" * 5000), b"413"),
])
def test_bad_http_gets_an_error_and_a_closed_connection(sim, raw, status):
    reply = exchange(sim, raw)
    assert reply.startswith(b"HTTP/1.1 " + status) and b"connection: close" in reply
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]["message"]


def test_router_patterns_and_405():
    async def a(req):
        return None

    async def b(req):
        return None

    router = Router()
    router.add("GET", "/v1/batches", a)
    router.add("POST", "/v1/batches/{batch_id}/cancel", b)
    assert router.match("GET", "/v1/batches") == (a, {}, True)
    assert router.match("POST", "/v1/batches/batch_1/cancel") == (b, {"batch_id": "batch_1"}, True)
    assert router.match("GET", "/v1/batches/batch_1/cancel") == (None, {}, True)  # known path: 405
    assert router.match("GET", "/v1/nothing") == (None, {}, False)  # unknown: 404
