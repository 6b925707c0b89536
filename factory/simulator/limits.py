"""Requests-per-minute and tokens-per-minute enforcement, per model, the way OpenAI does it.

Semantics: a token bucket per limit and model, holding at most one minute's worth (the limit)
and replenished continuously at limit/60 per second (OpenAI replenishes continuously rather
than resetting at minute boundaries). A request is admitted only when both buckets hold
enough: 1 request, and prompt tokens + max_tokens (the count OpenAI reserves at admission).
A request that asks for more tokens than the whole per-minute limit can never pass; it gets
OpenAI's "Request too large" 429 without a retry-after.

Rejected requests take nothing from the buckets. With accounting "actual" the unused part of
max_tokens goes back to the token bucket when the answer is sent; OpenAI's own accounting is
"reserve" (max_tokens is spent whatever the answer's length).
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
    """Capacity `per_minute`, refilled at per_minute/60 per second."""

    def __init__(self, per_minute: int, now: float) -> None:
        self.limit = per_minute
        self.level = float(per_minute)
        self._rate = per_minute / 60.0
        self._stamp = now

    def refill(self, now: float) -> None:
        if now > self._stamp:
            self.level = min(float(self.limit), self.level + (now - self._stamp) * self._rate)
            self._stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` is available (0 if it is now)."""
        return 0.0 if self.level >= amount else (amount - self.level) / self._rate

    def reset_s(self) -> float:
        """Seconds until the bucket is full again (OpenAI's x-ratelimit-reset-*)."""
        return (self.limit - self.level) / self._rate

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


class RateLimiter:
    def __init__(
        self,
        rpm: int | None,
        tpm: int | None,
        refund_unused: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self.refund_unused = refund_unused
        self._clock = clock
        self._buckets: dict[str, tuple[TokenBucket | None, TokenBucket | None]] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.rpm or self.tpm)

    def _for(self, model: str) -> tuple[TokenBucket | None, TokenBucket | None]:
        now = self._clock()
        pair = self._buckets.get(model)
        if pair is None:
            pair = (
                TokenBucket(self.rpm, now) if self.rpm else None,
                TokenBucket(self.tpm, now) if self.tpm else None,
            )
            self._buckets[model] = pair
        for bucket in pair:
            if bucket is not None:
                bucket.refill(now)
        return pair

    def admit(self, model: str, tokens: int) -> Rejection | None:
        """Take 1 request and `tokens` tokens, or say why not (taking nothing)."""
        requests, token_bucket = self._for(model)
        if token_bucket is not None and tokens > token_bucket.limit:
            return Rejection("tokens", token_bucket.limit, token_bucket.limit - token_bucket.remaining, tokens, None)
        waits: list[Rejection] = []
        if requests is not None and requests.level < 1:
            waits.append(Rejection("requests", requests.limit, requests.limit - requests.remaining, 1, requests.wait_for(1)))
        if token_bucket is not None and token_bucket.level < tokens:
            waits.append(Rejection("tokens", token_bucket.limit, token_bucket.limit - token_bucket.remaining, tokens, token_bucket.wait_for(tokens)))
        if waits:
            return max(waits, key=lambda w: w.wait_s or 0.0)
        if requests is not None:
            requests.level -= 1
        if token_bucket is not None:
            token_bucket.level -= tokens
        return None

    def settle(self, model: str, reserved: int, used: int) -> None:
        """After the answer: with refund_unused, give back what was reserved but not used."""
        if not self.refund_unused or reserved <= used:
            return
        _, token_bucket = self._for(model)
        if token_bucket is not None:
            token_bucket.level = min(float(token_bucket.limit), token_bucket.level + (reserved - used))

    def headers(self, model: str) -> list[tuple[str, str]]:
        """The x-ratelimit-* headers for `model` as they stand now (none for an unset limit)."""
        requests, token_bucket = self._for(model)
        out: list[tuple[str, str]] = []
        if requests is not None:
            out += [
                ("x-ratelimit-limit-requests", str(requests.limit)),
                ("x-ratelimit-remaining-requests", str(requests.remaining)),
                ("x-ratelimit-reset-requests", format_reset(requests.reset_s())),
            ]
        if token_bucket is not None:
            out += [
                ("x-ratelimit-limit-tokens", str(token_bucket.limit)),
                ("x-ratelimit-remaining-tokens", str(token_bucket.remaining)),
                ("x-ratelimit-reset-tokens", format_reset(token_bucket.reset_s())),
            ]
        return out


def retry_after_headers(wait_s: float) -> list[tuple[str, str]]:
    return [("retry-after", str(max(1, math.ceil(wait_s)))), ("retry-after-ms", str(max(1, math.ceil(wait_s * 1000))))]
