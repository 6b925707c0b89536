"""A server without rate-limit headers (a local llama.cpp, vLLM) is limited by its own queue: the
concurrency finds how many requests it answers at once and keeps about that many in flight, so no
request waits long in the server's line, where a fixed 32 would queue them all."""

from __future__ import annotations

import anyio

from factory.engine import Engine
from factory.engine.limiter import QUEUE_HIGH, AdaptiveConcurrency, QueueControl
from factory.engine.records import ChatRequest
from factory.engine.settings import EngineSettings
from factory.simulator import SimConfig, run_simulator


def settle(slots: int | None, rounds: int = 60, service: float = 1.0) -> int:
    """The cap QueueControl settles at against a server of `slots` parallel slots (None: any number),
    each answer taking `service` seconds per token alone; latency = service x the line ahead."""
    control, limit = QueueControl(), 1
    for _ in range(rounds):
        if limit > 256:
            break
        for _ in range(max(2, limit)):
            ahead = 0 if slots is None else max(0, limit - slots) / slots
            new = control.observe(service * (1 + ahead), limit)
            limit = new if new is not None else limit
    return limit


def test_a_one_slot_server_gets_a_short_line_and_a_parallel_one_gets_more() -> None:
    assert 2 <= settle(1) <= 1 + QUEUE_HIGH + 1, "the server is always busy, and no one waits long"
    assert 8 <= settle(8) <= 8 + 2 * (QUEUE_HIGH + 1)
    assert settle(None) >= 64, "a server that answers any number at once is not held back"


def test_the_cap_opens_at_two_following_the_queue_and_stays_under_the_ceiling() -> None:
    c = AdaptiveConcurrency(6, start=1)
    c.follow_queue()
    c.open()
    assert c.limit == 2
    for _ in range(200):
        c.on_success(seconds_per_token=0.01)  # no line at all: it grows, at most to the ceiling
    assert c.limit == 6


def test_against_a_one_slot_server_few_requests_wait_in_its_line() -> None:
    """The simulator answering one request at a time, each in ~50 ms: the engine keeps a short line."""
    config = SimConfig(seed=1, slots=1, latency_base_s=0.03, latency_per_token_s=0.001, output_tokens=20)
    requests = [ChatRequest("s", "m", [{"role": "user", "content": f"q{i}"}], {"max_tokens": 40}) for i in range(80)]
    with run_simulator(config) as url:
        from factory.engine.ledger import Ledger

        with Ledger(":memory:") as ledger:
            engine = Engine(EngineSettings(base_url=url, model="m", progress=False), ledger, api_key="k")
            results = []
            stats = anyio.run(engine.run, requests, results.append, len(requests))
    assert stats.done == 80 and engine.concurrency.queue is not None
    assert engine.concurrency.highest <= 8, "never 32 in the line of a server that answers one at a time"
    assert max(r.call.latency_s for r in results) < 15 * min(r.call.latency_s for r in results)
