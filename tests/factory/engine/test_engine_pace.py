"""What sets the pace: the concurrency cap grows while the limits have room (and only then), and each
request records how long it waited for the limiter apart from the server's latency."""

from __future__ import annotations

import anyio
from engine_fakes import FakeAPI, request, run


async def _slow(api: FakeAPI, call):
    await anyio.sleep(0.02)
    return api.ok(call)


def test_concurrency_grows_past_its_opening_while_the_limits_have_room(make_engine):
    engine = make_engine(FakeAPI(_slow), max_concurrency=128)  # no limits: answers alone set the pace
    stats, _ = run(engine, [request(i) for i in range(400)])
    assert stats.done == 400
    assert engine.concurrency.grown > 0 and engine.concurrency.highest > 32
    assert engine.concurrency.highest <= 128  # never above --max-concurrency


def test_concurrency_stays_where_it_opened_while_the_rate_limit_holds_the_pace(make_engine):
    # 1,200 RPM is 20 a second: about one request in flight at a time, the limiter always ahead of the cap.
    engine = make_engine(FakeAPI(_slow), max_concurrency=128, rpm=1200)
    stats, _ = run(engine, [request(i) for i in range(50)])
    assert stats.done == 50
    assert engine.concurrency.grown == 0 and engine.concurrency.highest == 32


def test_a_request_records_its_wait_for_the_limiter_apart_from_its_latency(make_engine, ledger):
    # 300 RPM: a burst of about four, then one every 0.2 s; the fake answers at once.
    stats, _ = run(make_engine(FakeAPI(), rpm=300), [request(i) for i in range(8)])
    calls = list(ledger.calls())
    assert stats.done == 8 and len(calls) == 8
    waits = sorted(c.wait_s for c in calls)
    assert waits[0] < 0.1 and waits[-1] >= 0.5  # the first went at once, the last waited its turn
    assert sum(c.wait_s for c in calls) > sum(c.latency_s or 0.0 for c in calls)
