"""A server without rate-limit headers (a local llama.cpp, vLLM) is limited by its own queue: the
concurrency finds how many requests it answers at once and keeps about that many in flight, so no
request waits long in the server's line, where a fixed 32 would queue them all."""

from __future__ import annotations

import anyio

from factory.engine import Engine
from factory.engine.limiter import OPEN_LIMIT, QUEUE_HIGH, AdaptiveConcurrency, QueueControl
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


def test_a_server_slow_to_answer_first_gets_two_until_it_says_whether_it_has_limits() -> None:
    """No answer within the probe's wait (a busy local server): two in flight, not the opening 32;
    the first answer then either brings rate limits (open fully) or none (follow the queue from two)."""
    limited = AdaptiveConcurrency(64, start=1)
    limited.open(answered=False)
    assert limited.limit == 2
    limited.limits_seen()
    assert limited.limit == min(64, OPEN_LIMIT)
    local = AdaptiveConcurrency(64, start=1)
    local.open(answered=False)
    local.follow_queue()
    local.limits_seen()  # not called by the engine after follow_queue; harmless if it were
    assert local.limit == 2 and local.queue is not None
    answered = AdaptiveConcurrency(64, start=1)
    answered.open()
    answered.limits_seen()
    assert answered.limit == min(64, OPEN_LIMIT), "an answered probe opens at once, as before"


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


def test_several_servers_share_the_requests_and_each_says_what_it_did() -> None:
    """--base-url A,B: each request goes to the server with the fewest in flight, so a server twice as
    slow gets fewer; the run's stats give each server's throughput."""
    requests = [ChatRequest("s", "m", [{"role": "user", "content": f"q{i}"}], {"max_tokens": 20}) for i in range(60)]
    fast = SimConfig(seed=1, slots=1, latency_base_s=0.02, output_tokens=10)
    slow = SimConfig(seed=2, slots=1, latency_base_s=0.08, output_tokens=10)
    with run_simulator(fast) as a, run_simulator(slow) as b:
        from factory.engine.ledger import Ledger

        with Ledger(":memory:") as ledger:
            engine = Engine(EngineSettings(base_url=f"{a},{b}", model="m", progress=False), ledger, api_key="k")
            stats = anyio.run(engine.run, requests, lambda r: None, len(requests))
    assert stats.done == 60 and set(stats.endpoints) == {a, b}
    assert stats.endpoints[a]["done"] > stats.endpoints[b]["done"] > 0
    assert sum(e["done"] for e in stats.endpoints.values()) == 60
    assert "per endpoint:" in stats.summary() and all(e["output_tokens_per_s"] > 0 for e in stats.endpoints.values())


def test_an_endpoint_list_is_checked() -> None:
    import pytest

    from factory.errors import SettingsError
    from factory.engine.settings import load_settings

    assert EngineSettings(base_url="http://a:1/v1/, http://b:2/v1").base_urls == ["http://a:1/v1", "http://b:2/v1"]
    with pytest.raises(SettingsError, match="names an endpoint twice"):
        load_settings(None, {"base_url": "http://a:1/v1,http://a:1/v1"})
    with pytest.raises(SettingsError, match="http.s. URL"):
        load_settings(None, {"base_url": "http://a:1/v1,ftp://b"})


def test_a_one_slot_server_slow_to_answer_the_first_request_is_not_flooded(monkeypatch) -> None:
    """The first answer comes after the probe's wait has run out: before it, two go out, not 32."""
    import factory.engine.engine as engine_module

    monkeypatch.setattr(engine_module, "PROBE_WAIT_S", 0.05)
    config = SimConfig(seed=2, slots=1, latency_base_s=0.2, latency_per_token_s=0.001, output_tokens=10)
    requests = [ChatRequest("s", "m", [{"role": "user", "content": f"q{i}"}], {"max_tokens": 20}) for i in range(12)]
    with run_simulator(config) as url:
        from factory.engine.ledger import Ledger

        with Ledger(":memory:") as ledger:
            engine = Engine(EngineSettings(base_url=url, model="m", progress=False), ledger, api_key="k")
            stats = anyio.run(engine.run, requests, lambda r: None, len(requests))
    assert stats.done == 12 and engine.concurrency.queue is not None
    assert engine.concurrency.highest <= 4, "the cap opened at two while the server had not yet answered"
