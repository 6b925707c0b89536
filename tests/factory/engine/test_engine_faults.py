"""Faults the engine must ride out (429 storms, 5xx, hangs, broken bodies) and the ones that must
stop it at once (bad key, unknown model, a 400 every request gets)."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest
from engine_fakes import FakeAPI, request, run

from factory.errors import FatalAPIError


def test_a_429_storm_with_retry_after_is_ridden_out(make_engine, ledger):
    """For the first 0.3 s every request gets 429 with retry-after-ms: 250. All requests finish;
    nothing is sent while the server's pause lasts; concurrency is cut, then grows back."""
    storm_until = time.monotonic() + 0.3
    pauses: list[tuple[float, float]] = []  # (when a 429 was sent, until when the server asked to wait)

    async def respond(api: FakeAPI, call):
        await anyio.sleep(0.002)
        if call.t < storm_until:
            pauses.append((call.t, call.t + 0.25))
            return api.error(429, "Rate limit reached for requests", code="rate_limit_exceeded",
                             headers={"retry-after-ms": "250", "retry-after": "1"})
        return api.ok(call)

    fake = FakeAPI(respond)
    engine = make_engine(fake, max_concurrency=16, max_attempts=20)
    stats, results = run(engine, [request(i) for i in range(300)])

    assert stats.done == 300 and stats.failed == 0
    assert ledger.count_by_status()["done"] == 300
    assert stats.rate_limited == len(pauses) > 0
    assert sum(c.rate_limited for c in ledger.calls()) == len(pauses)  # each request's 429s, for the report
    # The pause is honoured: after the last 429, nothing arrives before its retry-after ends
    # (a request already past the limiter when the 429 came may still arrive: 50 ms slack).
    last_429, resume_at = pauses[-1]
    later = [c.t for c in fake.calls if c.t > last_429 + 0.05]
    assert later and min(later) >= resume_at - 0.01
    # Concurrency was cut, then ramped back up by the successes that followed.
    assert engine.concurrency.cuts >= 1 and engine.concurrency.lowest < 16
    assert engine.concurrency.limit > engine.concurrency.lowest


def test_a_5xx_then_success_is_retried(make_engine):
    def respond(api: FakeAPI, call):
        if call.attempt < 2:
            return api.error(503 if call.attempt == 0 else 500, "The server is overloaded")
        return api.ok(call)

    fake = FakeAPI(respond)
    stats, results = run(make_engine(fake), [request(1)])
    assert results[0].ok and results[0].call.attempts == 3
    assert stats.retries == 2 and len(fake.calls) == 3


def test_a_hang_times_out_and_is_retried(make_engine):
    async def respond(api: FakeAPI, call):
        if call.attempt == 0:
            await anyio.sleep_forever()  # the server never answers
        return api.ok(call)

    fake = FakeAPI(respond)
    started = time.monotonic()
    stats, results = run(make_engine(fake, timeout_s=0.3), [request(1)])
    assert results[0].ok and results[0].call.attempts == 2
    assert time.monotonic() - started >= 0.3


def test_a_dropped_connection_and_a_broken_body_are_retried(make_engine):
    def respond(api: FakeAPI, call):
        if call.prompt == "question 1" and call.attempt == 0:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        if call.prompt == "question 2" and call.attempt == 0:
            return httpx.Response(200, content=b'{"id": "chatcmpl-1", "choices": [{"mess', headers={"content-type": "application/json"})
        if call.prompt == "question 3" and call.attempt == 0:
            return httpx.Response(200, json={"object": "chat.completion"})  # no choices
        return api.ok(call)

    fake = FakeAPI(respond)
    stats, results = run(make_engine(fake), [request(i) for i in (1, 2, 3)])
    assert stats.done == 3 and stats.retries == 3
    assert all(r.call.attempts == 2 for r in results)


def test_a_billed_answer_that_could_not_be_used_is_counted(make_engine):
    """A 200 with usage but no usable message was paid for: its cost stays on the request."""

    def respond(api: FakeAPI, call):
        if call.attempt == 0:
            return httpx.Response(200, json={"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 50}})
        return api.ok(call, prompt_tokens=100, completion_tokens=50)

    _, results = run(make_engine(fake := FakeAPI(respond)), [request(1)])
    call = results[0].call
    assert call.attempts == 2 and len(fake.calls) == 2
    assert call.usage.input_tokens == 200 and call.usage.output_tokens == 100
    assert call.cost_usd == pytest.approx(2 * (100 * 0.15 + 50 * 0.60) / 1e6)


def test_a_request_that_keeps_failing_gives_up_after_max_attempts(make_engine, ledger):
    fake = FakeAPI(lambda api, call: api.error(502, "Bad gateway", headers={"retry-after-ms": "1"}))
    stats, results = run(make_engine(fake, max_attempts=3), [request(1)])
    assert stats.failed == 1 and results[0].call.attempts == 3 and len(fake.calls) == 3
    assert "502" in results[0].call.error and "gave up after 3 attempts" in results[0].call.error
    assert ledger.count_by_status()["failed"] == 1


def test_a_bad_key_stops_the_run_with_one_clear_error(make_engine, ledger):
    fake = FakeAPI(key="sk-the-right-key-000")
    engine = make_engine(fake, api_key="sk-a-wrong-key-111111", max_concurrency=32)
    with pytest.raises(FatalAPIError, match=r"rejected the key \(401\): set OPENAI_API_KEY") as caught:
        run(engine, [request(i) for i in range(1000)])
    assert len(fake.calls) <= 3  # the first request probes alone: not a thousand 401s
    assert ledger.count_by_status()["done"] == 0
    assert all("401" in call.error for call in ledger.calls(status="failed"))
    assert caught.value.stats.stopped_reason == "fatal"
    assert "sk-a-wrong-key-111111" not in str(caught.value)


def test_an_unknown_model_stops_the_run(make_engine):
    fake = FakeAPI(lambda api, call: api.error(404, "The model `gpt-9` does not exist or you do not have access to it.",
                                               code="model_not_found"))
    with pytest.raises(FatalAPIError, match="model 'gpt-9' does not exist"):
        run(make_engine(fake), [request(i, model="gpt-9") for i in range(50)])
    assert len(fake.calls) <= 3


def test_a_400_that_every_request_gets_stops_the_run(make_engine, ledger):
    fake = FakeAPI(lambda api, call: api.error(400, "Unrecognized request argument supplied: frobnicate"))
    engine = make_engine(fake, max_concurrency=1)
    with pytest.raises(FatalAPIError, match="3 attempts of 3 requests in a row the same answer, HTTP 400: "
                                            ".*Unrecognized request argument"):
        run(engine, [request(i, frobnicate=True) for i in range(100)])
    assert len(fake.calls) == 3
    assert ledger.count_by_status()["failed"] == 3 and ledger.count_by_status()["done"] == 0


@pytest.mark.parametrize("concurrency", [1, 32])
def test_the_same_500_on_every_request_stops_the_run_within_five_requests(make_engine, ledger, concurrency):
    """A validation error dressed as a 500 (llama.cpp's server refusing json_schema) is retried as a
    server error would be, but the same body every time is not transient: the run stops."""
    body = ("1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
            "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}")
    fake = FakeAPI(lambda api, call: api.error(500, body))
    engine = make_engine(fake, max_concurrency=concurrency, max_attempts=6)
    with pytest.raises(FatalAPIError, match=r"(?s)2 requests in a row the same answer, HTTP 500: .*Input should be 'text' or "
                                            r"'json_object'.*not a passing fault"):
        run(engine, [request(i) for i in range(200)])
    sent = {c.prompt for c in fake.calls}
    assert len(sent) <= 5 and len(fake.calls) <= 5, "the probe holds the rest back while only errors come"
    assert ledger.count_by_status()["done"] == 0


def test_a_500_that_differs_each_time_is_ridden_out(make_engine):
    """OpenAI's own 500s name their request id: each is a passing fault, retried as usual."""
    def respond(api: FakeAPI, call):
        if call.attempt < 3:
            return api.error(500, f"The server had an error processing your request (request ID req_{len(api.calls)})")
        return api.ok(call)

    fake = FakeAPI(respond)
    stats, results = run(make_engine(fake, max_attempts=6), [request(i) for i in range(4)])
    assert stats.done == 4 and all(r.call.attempts == 4 for r in results)


def test_in_flight_requests_finish_when_the_run_stops(make_engine, ledger):
    """A fatal error stops new sends; answers already on their way are still recorded."""

    async def respond(api: FakeAPI, call):
        if call.prompt == "question 0":
            await anyio.sleep(0.2)
            return api.error(403, "Project does not have access to model")
        await anyio.sleep(0.05)
        return api.ok(call)

    fake = FakeAPI(respond)
    engine = make_engine(fake, max_concurrency=4)
    engine.concurrency.open()  # no probe: four in flight from the start
    with pytest.raises(FatalAPIError, match=r"refused access \(403\)") as caught:
        run(engine, (request(i) for i in range(100)))
    done = ledger.count_by_status()["done"]
    assert done == caught.value.stats.done > 0
    assert len(fake.calls) == done + 1  # nothing was sent after the 403
