"""Admission control: RPM/TPM buckets, header corrections, AIMD concurrency, the budget."""

from __future__ import annotations

import anyio
import pytest

from factory.engine.budget import Budget
from factory.engine.limiter import AdaptiveConcurrency, RateLimiter, TokenBucket, parse_reset, wait_hint


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_never_admits_more_than_the_limit_in_any_60_second_window():
    """Greedy takes, one every 10 ms over 3 minutes: every sliding minute holds <= the limit."""
    clock = Clock()
    bucket = TokenBucket(600, clock)
    admitted: list[float] = []
    for _ in range(18_000):
        if bucket.wait_time(1) == 0:
            bucket.take(1)
            admitted.append(clock.now)
        clock.now += 0.01
    j = 0
    for i, t in enumerate(admitted):
        while admitted[j] <= t - 60:
            j += 1
        assert i - j + 1 <= 600
    # ... and the pace is close to the limit: about 592 per minute after the first burst.
    assert 0.97 * 1800 <= len(admitted) <= 1800


def test_a_request_larger_than_the_burst_is_paced_not_refused():
    clock = Clock()
    bucket = TokenBucket(8000, clock)  # burst: 100 tokens
    assert bucket.wait_time(500) == 0  # a full bucket admits it...
    bucket.take(500)
    assert bucket.wait_time(1) == pytest.approx(401 / bucket.rate)  # ...and leaves a debt to repay


def test_reserve_accounting_keeps_max_tokens_spent_and_corrects_only_the_prompt_estimate():
    """OpenAI counts prompt + max_tokens at admission: a short answer gives nothing back."""
    clock = Clock()
    limiter = RateLimiter(rpm=None, tpm=6000, clock=clock)
    bucket = limiter._buckets["tokens"]
    assert bucket is not None
    full = bucket.level
    bucket.take(90)  # an estimate of 40 prompt tokens + max_tokens 50
    counted = limiter.counted(input_tokens=30, output_tokens=5, max_output_tokens=50)
    assert counted == 80
    limiter.settle(reserved=90, counted=counted)
    assert bucket.level == pytest.approx(full - 80)  # the over-estimate of the prompt comes back, not the answer's


def test_actual_accounting_gives_back_what_the_answer_did_not_use():
    clock = Clock()
    limiter = RateLimiter(rpm=None, tpm=6000, accounting="actual", clock=clock)
    bucket = limiter._buckets["tokens"]
    assert bucket is not None
    full = bucket.level
    bucket.take(90)
    limiter.settle(reserved=90, counted=limiter.counted(input_tokens=30, output_tokens=5, max_output_tokens=50))
    assert bucket.level == pytest.approx(full - 35)


def test_a_limit_learned_from_headers_starts_at_the_refill_rate_not_a_burst():
    clock = Clock()
    limiter = RateLimiter(rpm=None, tpm=None, clock=clock)
    limiter.observe({"x-ratelimit-limit-requests": "600", "x-ratelimit-remaining-requests": "599"})
    assert limiter.rpm == 600
    bucket = limiter._buckets["requests"]
    assert bucket is not None and bucket.wait_time(1) > 0  # empty: the probe already counted there
    clock.now += 1.0
    admitted = 0
    while bucket.wait_time(1) == 0:
        bucket.take(1)
        admitted += 1
    assert admitted <= 8  # under a second's worth of 600/min, never the minute's


def test_after_a_pause_the_traffic_resumes_at_the_refill_rate():
    clock = Clock()
    limiter = RateLimiter(rpm=600, tpm=None, clock=clock)
    bucket = limiter._buckets["requests"]
    assert bucket is not None
    limiter.pause(5.0)
    clock.now += 5.0
    assert bucket.level < 1  # the pause left it empty: no burst when it ends
    clock.now += 60.0  # however long the quiet, less than one second's worth goes at once
    admitted = 0
    while bucket.wait_time(1) == 0:
        bucket.take(1)
        admitted += 1
    assert admitted == 7  # 600/min over 3/4 of a second: 7.5


def test_headers_lower_the_limit_and_the_level_never_raise_them():
    clock = Clock()
    limiter = RateLimiter(rpm=600, tpm=None, clock=clock)
    limiter.observe({"x-ratelimit-limit-requests": "300", "x-ratelimit-remaining-requests": "2"})
    assert limiter.rpm == 300
    assert limiter._buckets["requests"].level <= 2  # type: ignore[union-attr]
    limiter.observe({"x-ratelimit-limit-requests": "10000", "x-ratelimit-remaining-requests": "9999"})
    assert limiter.rpm == 600  # the configured limit is a ceiling
    # A limit the settings left open is learnt from the server.
    limiter.observe({"x-ratelimit-limit-tokens": "150000", "x-ratelimit-remaining-tokens": "149000"})
    assert limiter.tpm == 150000


def test_a_429_pauses_everyone_for_the_retry_after():
    async def main() -> list[float]:
        limiter = RateLimiter(rpm=60_000, tpm=None)
        limiter.pause(0.2)
        started = anyio.current_time()
        waited: list[float] = []

        async def one() -> None:
            await limiter.acquire(10)
            waited.append(anyio.current_time() - started)

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(one)
        return waited

    waited = anyio.run(main)
    assert len(waited) == 5 and min(waited) >= 0.19


@pytest.mark.parametrize(("text", "seconds"), [("1s", 1), ("6m0s", 360), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0.5", 0.5), ("", None)])
def test_reset_durations_parse(text, seconds):
    assert parse_reset(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_concurrency_probes_halves_on_429_and_grows_back():
    clock = Clock()

    async def main() -> None:
        c = AdaptiveConcurrency(16, start=1, clock=clock)
        assert c.limit == 1
        c.open()
        assert c.limit == 16
        c.on_rate_limited(0.1)
        assert c.limit == 8
        c.on_rate_limited(0.1)  # the same wave of 429s: one cut
        assert c.limit == 8
        clock.now += 2
        c.on_rate_limited(0.1)
        assert c.limit == 4 and c.cuts == 2 and c.lowest == 4
        for _ in range(10):
            c.on_success()
        assert c.limit == 4  # answers while the limits held the pace (or slots were free): no growth
        c.on_success(room=True)
        assert c.limit == 5  # additive increase: one per answer while the cap held the pace
        for _ in range(200):
            c.on_success(room=True)
        assert c.limit == 16 and c.highest == 16  # at the ceiling, never above

    anyio.run(main)


def test_a_429_to_the_probe_opens_at_half_the_ceiling():
    async def main() -> None:
        c = AdaptiveConcurrency(16, start=1)
        c.on_rate_limited(1.0)
        assert c.limit == 8
        c.open()
        assert c.limit == 8

    anyio.run(main)


def test_the_capacity_limit_bounds_in_flight_work():
    async def main() -> int:
        c = AdaptiveConcurrency(3)
        peak = 0

        async def work() -> None:
            nonlocal peak
            holder = object()
            await c.acquire(holder)
            peak = max(peak, c.in_flight)
            await anyio.sleep(0.01)
            c.release(holder)

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(work)
        return peak

    assert anyio.run(main) == 3


def test_the_budget_holds_spent_plus_reserved_under_the_cap():
    async def main() -> None:
        budget = Budget(1.0)
        assert await budget.reserve(0.6)
        reserved_later = False

        async def second() -> None:
            nonlocal reserved_later
            reserved_later = await budget.reserve(0.6)  # waits: 0.6 + 0.6 > 1.0 while the first is out

        async with anyio.create_task_group() as tg:
            tg.start_soon(second)
            await anyio.sleep(0.01)
            assert not reserved_later and budget.committed == pytest.approx(0.6)
            budget.settle(0.6, 0.3)  # the first cost less than its worst case: room for the second
        assert reserved_later and budget.committed == pytest.approx(0.9)
        budget.settle(0.6, 0.6)
        assert not await budget.reserve(0.2)  # 0.9 spent: nothing in flight can free room
        assert budget.spent == pytest.approx(0.9)

    anyio.run(main)


def test_a_429_without_retry_after_waits_for_what_the_reset_headers_say():
    headers = {"x-ratelimit-limit-tokens": "60000", "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "60s",
               "x-ratelimit-limit-requests": "600", "x-ratelimit-remaining-requests": "10", "x-ratelimit-reset-requests": "59s"}
    # tokens refill at 1000/s here (60 s to refill 60,000): 500 tokens take 0.5 s; requests are not short
    assert wait_hint(headers, 500) == pytest.approx(0.5)
    assert wait_hint({}, 500) is None
