"""Requests-per-minute and tokens-per-minute enforcement, per model, the way OpenAI does it.

Semantics: per limit and model, a token bucket holding one minute's worth (the limit), replenished
continuously at limit/60 per second (OpenAI replenishes continuously rather than resetting at minute
boundaries); its level is what the x-ratelimit-remaining-* headers report. OpenAI may also enforce
a per-minute limit over shorter periods ("quantised": 600 RPM as 10 a second), so with a quantum of
q seconds a second bucket holds only q seconds' worth (limit/60 x q), refilled at the same rate: a
full minute's worth sent at once is refused. A request larger than the short bucket passes only
when that bucket is full, and leaves it in debt. A request is admitted only when every bucket holds
enough: 1 request, and prompt tokens + max_tokens (the count OpenAI reserves at admission). A
request that asks for more tokens than the whole per-minute limit can never pass; it gets OpenAI's
"Request too large" 429 without a retry-after.

Rejected requests take nothing. With accounting "actual" the unused part of max_tokens goes back
when the answer is sent (some local servers count that way); OpenAI's own accounting is "reserve"
(max_tokens is spent whatever the answer's length), the default.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


def format_reset(seconds: float) -> str:
    """OpenAI's duration format: "0s", "120ms", "1s", "6.5s", "6m0s", "1h2m3s"."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    ms = round(seconds * 1000)
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


class TokenBucket:
    """Capacity `capacity` (default: `per_minute`), refilled at per_minute/60 per second."""

    def __init__(self, per_minute: int, now: float, capacity: float | None = None) -> None:
        self.limit = per_minute
        self.capacity = float(per_minute if capacity is None else capacity)
        self.level = self.capacity
        self._rate = per_minute / 60.0
        self._stamp = now

    def refill(self, now: float) -> None:
        if now > self._stamp:
            self.level = min(self.capacity, self.level + (now - self._stamp) * self._rate)
            self._stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` may be taken (0 if it may now); an amount over the capacity waits
        for a full bucket."""
        needed = min(amount, self.capacity)
        return 0.0 if self.level >= needed else (needed - self.level) / self._rate

    def reset_s(self) -> float:
        """Seconds until the bucket is full again (OpenAI's x-ratelimit-reset-*)."""
        return max(0.0, self.capacity - self.level) / self._rate

    def give(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)

    @property
    def remaining(self) -> int:
        return max(0, int(self.level))


@dataclass(frozen=True)
class Rejection:
    """Why a request was refused: `kind` is "requests" or "tokens"; `wait_s` None = never fits."""

    kind: str
    limit: int
    used: int
    requested: int
    wait_s: float | None


class _Limit:
    """One limit of one model: the minute bucket, and the short (quantised) one if any."""

    def __init__(self, per_minute: int, quantum_s: float, now: float) -> None:
        self.minute = TokenBucket(per_minute, now)
        short = per_minute * quantum_s / 60.0
        self.short = TokenBucket(per_minute, now, max(1.0, short)) if quantum_s > 0 and short < per_minute else None

    @property
    def buckets(self) -> tuple[TokenBucket, ...]:
        return (self.minute,) if self.short is None else (self.minute, self.short)

    def refill(self, now: float) -> None:
        for b in self.buckets:
            b.refill(now)

    def wait_for(self, amount: float) -> float:
        return max(b.wait_for(amount) for b in self.buckets)

    def take(self, amount: float) -> None:
        for b in self.buckets:
            b.level -= amount

    def give(self, amount: float) -> None:
        for b in self.buckets:
            b.give(amount)


class RateLimiter:
    def __init__(
        self,
        rpm: int | None,
        tpm: int | None,
        refund_unused: bool = False,
        clock: Callable[[], float] = time.monotonic,
        quantum_s: float = 0.0,
    ) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self.refund_unused = refund_unused
        self.quantum_s = quantum_s
        self._clock = clock
        self._limits: dict[str, tuple[_Limit | None, _Limit | None]] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.rpm or self.tpm)

    def _for(self, model: str) -> tuple[_Limit | None, _Limit | None]:
        now = self._clock()
        pair = self._limits.get(model)
        if pair is None:
            pair = (
                _Limit(self.rpm, self.quantum_s, now) if self.rpm else None,
                _Limit(self.tpm, self.quantum_s, now) if self.tpm else None,
            )
            self._limits[model] = pair
        for limit in pair:
            if limit is not None:
                limit.refill(now)
        return pair

    def admit(self, model: str, tokens: int) -> Rejection | None:
        """Take 1 request and `tokens` tokens, or say why not (taking nothing)."""
        requests, token_limit = self._for(model)
        if token_limit is not None and tokens > token_limit.minute.limit:
            t = token_limit.minute
            return Rejection("tokens", t.limit, t.limit - t.remaining, tokens, None)
        waits: list[Rejection] = []
        for kind, limit, amount in (("requests", requests, 1), ("tokens", token_limit, tokens)):
            if limit is not None and (wait := limit.wait_for(amount)) > 0:
                m = limit.minute
                waits.append(Rejection(kind, m.limit, m.limit - m.remaining, amount, wait))
        if waits:
            return max(waits, key=lambda w: w.wait_s or 0.0)
        if requests is not None:
            requests.take(1)
        if token_limit is not None:
            token_limit.take(tokens)
        return None

    def settle(self, model: str, reserved: int, used: int) -> None:
        """After the answer: with refund_unused, give back what was reserved but not used."""
        if not self.refund_unused or reserved <= used:
            return
        _, token_limit = self._for(model)
        if token_limit is not None:
            token_limit.give(reserved - used)

    def headers(self, model: str) -> list[tuple[str, str]]:
        """The x-ratelimit-* headers for `model` as they stand now (none for an unset limit): the
        minute bucket's, as OpenAI reports them."""
        out: list[tuple[str, str]] = []
        for kind, limit in zip(("requests", "tokens"), self._for(model)):
            if limit is not None:
                m = limit.minute
                out += [
                    (f"x-ratelimit-limit-{kind}", str(m.limit)),
                    (f"x-ratelimit-remaining-{kind}", str(m.remaining)),
                    (f"x-ratelimit-reset-{kind}", format_reset(m.reset_s())),
                ]
        return out


def retry_after_headers(wait_s: float) -> list[tuple[str, str]]:
    return [("retry-after", str(max(1, math.ceil(wait_s)))), ("retry-after-ms", str(max(1, math.ceil(wait_s * 1000))))]
