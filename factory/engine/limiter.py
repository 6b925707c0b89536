"""Admission control: what must be true before a request may be sent.

- `RateLimiter`: requests-per-minute and tokens-per-minute buckets. A request reserves its input
  estimate plus its `max_tokens` before it is sent, and that is what it costs against the limit:
  OpenAI counts prompt + `max_tokens` at admission and gives nothing back for a shorter answer
  ("reserve" accounting). Only the estimate is corrected after, to the real prompt size. A server
  that counts only the tokens used ("actual": some local servers) is a setting. Limits are seeded
  from the settings and corrected from the server's `x-ratelimit-*` headers; a 429 pauses
  everyone for the server's retry-after.
- `AdaptiveConcurrency`: the cap on requests in flight (it bounds memory too), grown by one per
  answer while it holds the pace and the limits have room, cut in half on a 429 (AIMD, as TCP does).
  Against a server that sends no rate-limit headers (a local llama.cpp or vLLM), whose limit is its
  own queue, `QueueControl` sizes the cap instead: from how much slower answers come than the
  fastest seen (TCP Vegas's estimate of how many requests wait in line).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Mapping

import anyio

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# The bucket holds 3/4 of a second's worth of the per-minute limit and refills so that it never
# admits more than the limit in ANY 60-second window (burst + 60 s x rate = limit). That pacing is
# accepted by a token-bucket server, a sliding-window server, and one that enforces the limit per
# second ("600 RPM" as "10 per second", as OpenAI may). Holding less than the server's second keeps
# a quarter second's worth in hand there: the server counts a request when it arrives, and arrivals
# bunch up by the network's (and the machine's) jitter.
BURST_SECONDS = 0.75


class TokenBucket:
    """`per_minute` units per minute, at most `BURST_SECONDS` worth at once.

    An amount larger than the burst is admitted when the bucket is full, and leaves it in debt,
    so a huge request is paced instead of refused forever.
    """

    def __init__(self, per_minute: float, clock: Clock) -> None:
        self._clock = clock
        self._stamp = clock()
        self.per_minute = self.capacity = self.rate = 0.0
        self._configure(per_minute)
        self.level = self.capacity  # starts full

    def set_limit(self, per_minute: float) -> None:
        self._refill()
        self._configure(per_minute)
        self.level = min(self.level, self.capacity)

    def _configure(self, per_minute: float) -> None:
        self.per_minute = float(per_minute)
        self.capacity = max(1.0, self.per_minute * BURST_SECONDS / 60.0)
        # units per second; a limit below twice the burst (1 RPM) would stall: pace it at half.
        self.rate = max(self.per_minute - self.capacity, self.per_minute / 2.0) / 60.0

    def _refill(self) -> None:
        now = self._clock()
        if self.rate:
            self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
        self._stamp = now

    def wait_time(self, amount: float) -> float:
        """Seconds until `amount` can be taken (0: now)."""
        self._refill()
        needed = min(amount, self.capacity)
        return 0.0 if self.level >= needed else (needed - self.level) / self.rate

    def take(self, amount: float) -> None:
        self._refill()
        self.level -= amount

    def give(self, amount: float) -> None:
        self._refill()
        self.level = min(self.capacity, self.level + amount)

    def clamp(self, at_most: float) -> None:
        self._refill()
        self.level = min(self.level, at_most)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_reset(value: str | None) -> float | None:
    """OpenAI's reset durations ("1s", "6m0s", "20ms", "1h2m3.5s") in seconds."""
    if not value:
        return None
    parts = _DURATION_PART.findall(value.strip())
    if not parts:
        try:
            return float(value)
        except ValueError:
            return None
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def _header_float(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


ACCOUNTINGS = ("reserve", "actual")


class RateLimiter:
    """RPM and TPM buckets shared by every request of an engine. A limit of None is unlimited
    until a response's headers tell it. `accounting`: how the server counts a request against its
    TPM limit, "reserve" (prompt + max_tokens, OpenAI) or "actual" (prompt + the answer's tokens)."""

    def __init__(
        self, rpm: int | None, tpm: int | None, *, accounting: str = "reserve", clock: Clock = time.monotonic
    ) -> None:
        if accounting not in ACCOUNTINGS:
            raise ValueError(f"accounting must be one of {ACCOUNTINGS}, got {accounting!r}")
        self.accounting = accounting
        self._clock = clock
        self._configured = {"requests": rpm, "tokens": tpm}
        self._buckets: dict[str, TokenBucket | None] = {
            "requests": TokenBucket(rpm, clock) if rpm else None,
            "tokens": TokenBucket(tpm, clock) if tpm else None,
        }
        self.paused_until = 0.0
        self._lock: anyio.Lock | None = None
        self.holding: str | None = None  # what the request at the head of the queue waits for now
        self.learned: dict[str, int] = {}  # "requests"/"tokens" -> the server's limit per minute (headers)

    @property
    def unlimited(self) -> bool:
        """No limit given and none told by the server: its own queue is all that limits it."""
        return not self.learned and all(b is None for b in self._buckets.values())

    @property
    def rpm(self) -> float | None:
        b = self._buckets["requests"]
        return b.per_minute if b else None

    @property
    def tpm(self) -> float | None:
        b = self._buckets["tokens"]
        return b.per_minute if b else None

    async def acquire(self, tokens: int) -> float:
        """Wait until one request of `tokens` tokens may be sent, and reserve it. Waiters are served
        in order (the lock is FIFO), so a large request is not starved by small ones.
        Returns the seconds waited."""
        if self._buckets["requests"] is None and self._buckets["tokens"] is None and self.paused_until <= self._clock():
            return 0.0  # no limit known yet: nothing to wait for
        if self._lock is None:
            self._lock = anyio.Lock()
        start = self._clock()
        async with self._lock:
            while True:
                now = self._clock()
                pause = self.paused_until - now
                r, t = self._buckets["requests"], self._buckets["tokens"]
                rpm_wait = r.wait_time(1) if r else 0.0
                tpm_wait = t.wait_time(tokens) if t else 0.0
                wait = max(pause, rpm_wait, tpm_wait)
                if wait <= 0:
                    break
                self.holding = "a 429 pause" if wait == pause else "RPM" if rpm_wait >= tpm_wait else "TPM reservations"
                try:
                    await anyio.sleep(wait)
                finally:
                    self.holding = None
            if (r := self._buckets["requests"]) is not None:
                r.take(1)
            if (t := self._buckets["tokens"]) is not None:
                t.take(tokens)
        return self._clock() - start

    def has_room(self, tokens: int) -> bool:
        """Whether one more request of `tokens` tokens could be sent now without waiting."""
        if self.holding is not None or self.paused_until > self._clock():
            return False
        return self._wait_time(tokens) <= 0.0

    def _wait_time(self, tokens: int) -> float:
        r, t = self._buckets["requests"], self._buckets["tokens"]
        return max(r.wait_time(1) if r else 0.0, t.wait_time(tokens) if t else 0.0)

    def counted(self, input_tokens: int, output_tokens: int, max_output_tokens: int) -> int:
        """What the server counts against its TPM limit for an answered request."""
        return input_tokens + (max_output_tokens if self.accounting == "reserve" else output_tokens)

    def settle(self, reserved: int, counted: int) -> None:
        """A response came: bring the reservation to what the server `counted` (see `counted`):
        give back an over-estimate, take the excess of an under-estimate."""
        if (t := self._buckets["tokens"]) is not None and reserved != counted:
            if counted < reserved:
                t.give(reserved - counted)
            else:
                t.take(counted - reserved)

    def refund(self, reserved: int) -> None:
        """The server did not count the request (it answered 429): give back all of it."""
        if (r := self._buckets["requests"]) is not None:
            r.give(1)
        if (t := self._buckets["tokens"]) is not None:
            t.give(reserved)

    def pause(self, seconds: float) -> None:
        """A 429: nobody sends for `seconds`, and the buckets start empty after the pause so the
        traffic resumes at the refill rate instead of a burst."""
        self.paused_until = max(self.paused_until, self._clock() + seconds)
        for b in self._buckets.values():
            if b is not None:
                b.clamp(0.0)
        log.debug("rate limiter: paused for %.2fs", seconds)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Correct the limits from `x-ratelimit-limit-*` and the levels from `x-ratelimit-remaining-*`.

        The configured limit is a ceiling the user chose (a shared key, say): the server can lower
        it, not raise it. The remaining count lowers our level when someone else uses the same
        key; it never raises it (responses arrive out of order, the oldest would undo the newest).
        A limit learned here starts with an empty bucket: what was sent before the server told it
        (the probe) already counts there, and the pace then starts at the refill rate, not a burst.
        """
        for kind in ("requests", "tokens"):
            limit = _header_float(headers, f"x-ratelimit-limit-{kind}")
            remaining = _header_float(headers, f"x-ratelimit-remaining-{kind}")
            bucket = self._buckets[kind]
            if limit is not None and limit > 0:
                self.learned[kind] = int(limit)
                configured = self._configured[kind]
                target = min(limit, configured) if configured else limit
                if bucket is None:
                    bucket = self._buckets[kind] = TokenBucket(target, self._clock)
                    bucket.clamp(0.0)
                    log.debug("rate limiter: %s limit %.0f/min from the server's headers", kind, target)
                elif target != bucket.per_minute:
                    log.debug("rate limiter: %s limit %.0f -> %.0f/min (headers)", kind, bucket.per_minute, target)
                    bucket.set_limit(target)
            if bucket is not None and remaining is not None:
                bucket.clamp(remaining)


def wait_hint(headers: Mapping[str, str], tokens: int) -> float | None:
    """For a 429 without retry-after: how long until one request of `tokens` tokens fits, from
    `x-ratelimit-reset-*` (the time until the bucket is full again) and how empty it is."""
    hints = []
    for kind, need in (("requests", 1), ("tokens", tokens)):
        limit = _header_float(headers, f"x-ratelimit-limit-{kind}")
        remaining = _header_float(headers, f"x-ratelimit-remaining-{kind}")
        reset = parse_reset(headers.get(f"x-ratelimit-reset-{kind}"))
        if limit and remaining is not None and reset and remaining < need:
            per_unit = reset / max(1.0, limit - remaining)  # refill time of one unit
            hints.append((need - remaining) * per_unit)
    return max(hints) if hints else None


# After the probe the cap opens here (or at the ceiling, if lower), then grows while the limits
# have room: a fixed cap would hold the pace whenever answers are slow (32 in flight at 60 s each
# is 32 requests a minute, however high the limits).
OPEN_LIMIT = 32
# QueueControl: requests waiting in the server's line, as estimated, below which the cap grows and
# above which it shrinks; between the two it holds. Two in line keep a one-slot server always busy
# (a request is ready the moment one finishes) without letting any wait for long.
QUEUE_LOW, QUEUE_HIGH = 1.0, 3.0
# Latencies below this are taken as this: at a few milliseconds, what varies is the network and
# this process, not the server's line, and no request is at risk of a timeout.
QUEUE_LATENCY_FLOOR_S = 0.05


class QueueControl:
    """The cap on requests in flight for a server whose only limit is its own queue.

    Each answer gives a sample of seconds per output token (the latency includes the time the
    request waited in the server's line). Over a round (as many answers as the cap), the estimate
    of requests in line is cap x (1 - fastest / mean of the round): a server that answers each
    request alone as fast as ever has none in line; one that answers one at a time has cap - 1.
    Below QUEUE_LOW the cap doubles (until a first round shows a line) and then grows by one;
    above QUEUE_HIGH it shrinks by one; a fresh fastest time resets nothing but the estimate.
    """

    def __init__(self) -> None:
        self.fastest = math.inf
        self._round: list[float] = []
        self.slow_start = True
        self.queued = 0.0  # the last round's estimate

    def observe(self, seconds_per_token: float, limit: int) -> int | None:
        """A new cap when a round ends and the estimate says to change it, else None."""
        if not math.isfinite(seconds_per_token) or seconds_per_token <= 0:
            return None
        self.fastest = min(self.fastest, seconds_per_token)
        self._round.append(seconds_per_token)
        if len(self._round) < max(2, limit):
            return None
        mean = sum(self._round) / len(self._round)
        self._round.clear()
        self.queued = limit * (1.0 - self.fastest / mean)
        if self.queued < QUEUE_LOW:
            return limit * 2 if self.slow_start else limit + 1
        self.slow_start = False
        if self.queued > QUEUE_HIGH:
            return max(1, limit - 1)
        return None


class AdaptiveConcurrency:
    """How many requests may be in flight, at most `ceiling` (it bounds memory too).

    Starts at `start` (a probe: one request, so a bad key or model costs one request, not
    hundreds) and `open`s to `opened`; then AIMD: one more for each answer that comes while every
    slot is taken and the rate limits have room for another request (`on_success(room=True)`),
    halved on a 429 (at most once per `cooldown_s`, so one wave of 429s is one cut).
    """

    def __init__(
        self, ceiling: int, *, start: int | None = None, opened: int = OPEN_LIMIT, cooldown_s: float = 1.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.ceiling = ceiling
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._opened = min(ceiling, opened)
        self._limit = min(self._opened, start) if start else self._opened
        self._probing = self._limit < self._opened
        self._last_cut = -math.inf
        self.cuts = 0
        self.grown = 0  # steps of additive increase
        self.highest = self.lowest = self._opened
        self._limiter: anyio.CapacityLimiter | None = None
        self.queue: QueueControl | None = None  # set against a server without rate-limit headers
        self._unsure = False  # opened at two before the first answer: open fully if it brings limits

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_flight(self) -> int:
        return 0 if self._limiter is None else int(self._limiter.borrowed_tokens)

    def _capacity(self) -> anyio.CapacityLimiter:
        if self._limiter is None:  # created inside the event loop, on first use
            self._limiter = anyio.CapacityLimiter(self._limit)
        return self._limiter

    async def acquire(self, holder: object) -> None:
        await self._capacity().acquire_on_behalf_of(holder)

    def release(self, holder: object) -> None:
        self._capacity().release_on_behalf_of(holder)

    def _set(self, limit: int) -> None:
        self._limit = limit
        self._capacity().total_tokens = limit  # raising it wakes waiters; lowering lets in-flight finish

    def open(self, answered: bool = True) -> None:
        """End the probe: go from the start limit to the opening one (two, where the server's
        queue sets the pace: `QueueControl` grows it from there). Not `answered` (the first answer
        is slow to come): two as well, since a slow server is most often a busy local one, until
        that answer says whether the server sends rate limits (`limits_seen`)."""
        if self._probing:
            self._probing = False
            opened = min(2, self.ceiling) if self.queue is not None or not answered else self._opened
            self._unsure = not answered and self.queue is None
            log.debug("concurrency: %d -> %d (the probe %s)", self._limit, opened,
                      "was answered" if answered else "is slow to answer")
            self._set(opened)
            self.highest = self.lowest = opened

    def follow_queue(self) -> None:
        """The server sent no rate-limit headers: size the cap by its queue from now on."""
        self._unsure = False
        if self.queue is None:
            log.debug("concurrency: no rate-limit headers; following the server's queue")
            self.queue = QueueControl()

    def limits_seen(self) -> None:
        """The first answer came, with rate-limit headers: the cap opened cautiously opens fully."""
        if self._unsure:
            self._unsure = False
            if self._opened > self._limit:
                log.debug("concurrency: %d -> %d (the server sends rate limits)", self._limit, self._opened)
                self._set(self._opened)
                self.highest = max(self.highest, self._opened)

    @property
    def full(self) -> bool:
        """Every slot is taken: the cap holds the pace (unless something else does too)."""
        return self.in_flight >= self._limit

    def on_success(self, room: bool = False, seconds_per_token: float | None = None) -> None:
        """An answer came. `room`: every slot was taken and the rate limits had room for one more
        request: the cap, not the limits, held the pace, so it grows by one. Following the server's
        queue, `seconds_per_token` (the answer's latency over its output tokens) decides instead."""
        if self.queue is not None:
            if self._probing or seconds_per_token is None:
                return
            new = self.queue.observe(seconds_per_token, self._limit)
            if new is not None and (new := min(new, self.ceiling)) != self._limit:
                log.debug("concurrency: %d -> %d (about %.1f requests in the server's line)", self._limit, new,
                          self.queue.queued)
                self.grown += new > self._limit
                self.cuts += new < self._limit
                self._set(new)
                self.highest, self.lowest = max(self.highest, new), min(self.lowest, new)
            return
        if self._probing or not room or self._limit >= self.ceiling:
            return
        self._set(self._limit + 1)
        self.grown += 1
        self.highest = max(self.highest, self._limit)

    def on_rate_limited(self, retry_after: float | None = None) -> None:
        now = self._clock()
        if now - self._last_cut < max(self.cooldown_s, retry_after or 0.0):
            return
        self._last_cut = now
        # A 429 to the probe ends it too, at half the opening limit rather than all of it.
        new = max(1, (self._opened if self._probing else self._limit) // 2)
        self._probing = False
        if new != self._limit:
            log.debug("concurrency: %d -> %d after a 429", self._limit, new)
            self._set(new)
            self.cuts += 1
            self.lowest = min(self.lowest, new)
