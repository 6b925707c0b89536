"""The live progress line on stderr.

On a terminal it is rewritten in place (\\r) a few times a second; into a file or a pipe (CI, a
log) a plain line is written every few seconds instead, so logs stay readable.

  1234/5000 done (3 failed, 200 cached) | 412 req/min of 600 | 148k tok/min of 150k |
  $0.41 spent, ~$1.65 projected | 429s 2 | retries 5 | in flight 12/32 | ETA 9m10s | held by TPM reservations

A caller that counts toward something else than requests (generate: examples kept against --n)
gives a `Goal`; the line then leads with it and its yield per request, and projects the money and
the time from that yield:

  kept 412/1000 | yield 1.31 per request | 315 requests (2 failed, 0 cached) | ... | ETA 3m05s

"held by" names what holds the pace right now: TPM reservations, RPM, a 429 pause, the budget
(waiting for in-flight requests to settle), or the concurrency cap; absent, the server's answers do.

In a notebook a line per update would flood the cell: the Python API chooses a progress bar there
(`ProgressBar`, tqdm's notebook widget where it can draw one) with `use_display`, which every
engine started inside it picks up through `progress_display()`.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TextIO


class RateMeter:
    """Events and amounts over the last `window_s` seconds, in one-second bins (constant memory)."""

    def __init__(self, window_s: int = 60, clock: Callable[[], float] | None = None) -> None:
        self.window_s = window_s
        self._clock = clock or time.monotonic
        self._bins: deque[list[float]] = deque()  # [second, count, amount]
        self._started = self._clock()

    def add(self, amount: float = 0.0) -> None:
        second = math.floor(self._clock())
        if self._bins and self._bins[-1][0] == second:
            self._bins[-1][1] += 1
            self._bins[-1][2] += amount
        else:
            self._bins.append([second, 1, amount])
        self._trim(second)

    def _trim(self, now_second: float) -> None:
        while self._bins and self._bins[0][0] <= now_second - self.window_s:
            self._bins.popleft()

    def per_minute(self) -> tuple[float, float]:
        """(events per minute, amount per minute) over the window, or since the start if shorter."""
        now = self._clock()
        self._trim(math.floor(now))
        span = min(float(self.window_s), max(now - self._started, 1.0))
        count = sum(b[1] for b in self._bins)
        amount = sum(b[2] for b in self._bins)
        return count * 60.0 / span, amount * 60.0 / span


@dataclass(frozen=True)
class Goal:
    """What a run counts toward, when it is not a number of requests (generate: examples kept)."""

    done: int  # all so far (a resumed run's earlier ones included)
    target: int  # --n
    done_now: int  # in this run: with the requests of this run, the yield
    label: str = "kept"

    def per_request(self, requests: int) -> float | None:
        return None if requests <= 0 else self.done_now / requests

    def requests_to_go(self, requests: int) -> float | None:
        """Requests still needed at this run's yield so far (None: nothing measured yet)."""
        y = self.per_request(requests)
        remaining = max(0, self.target - self.done)
        if remaining == 0:
            return 0.0
        return None if not y else remaining / y


@dataclass
class Snapshot:
    done: int
    failed: int
    cached: int
    total: int | None
    elapsed_s: float
    req_per_min: float
    tok_per_min: float
    rpm_limit: float | None
    tpm_limit: float | None
    spent_usd: float | None
    rate_limited: int
    retries: int
    in_flight: int
    concurrency: int
    stopping: str | None = None
    held_by: str | None = None  # what holds the pace now (None: the server's answers)
    goal: Goal | None = None

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.cached


def _si(x: float) -> str:
    if x >= 10_000:
        return f"{x / 1000:.0f}k"
    if x >= 1000:
        return f"{x / 1000:.1f}k"
    return f"{x:.0f}"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _to_go(s: Snapshot) -> float | None:
    """Requests still to finish: from the goal's yield, else from the total (None: unknown)."""
    if s.goal is not None:
        return s.goal.requests_to_go(s.finished)
    return None if s.total is None else float(max(0, s.total - s.finished))


def format_line(s: Snapshot) -> str:
    parts = []
    if (g := s.goal) is not None:
        parts.append(f"{g.label} {g.done}/{g.target}")
        y = g.per_request(s.finished)
        parts.append("yield not measured yet" if y is None else f"yield {y:.2f} per request")
        parts.append(f"{s.finished} requests ({s.failed} failed, {s.cached} cached)")
    else:
        total = f"/{s.total}" if s.total is not None else ""
        parts.append(f"{s.finished}{total} done ({s.failed} failed, {s.cached} cached)")
    to_go = _to_go(s)
    parts.append(f"{s.req_per_min:.0f} req/min" + (f" of {s.rpm_limit:.0f}" if s.rpm_limit else ""))
    parts.append(f"{_si(s.tok_per_min)} tok/min" + (f" of {_si(s.tpm_limit)}" if s.tpm_limit else ""))
    if s.spent_usd is None:
        parts.append("$ unknown (no price)")
    else:
        money = f"${s.spent_usd:.2f} spent"
        paid = s.done + s.failed
        if to_go is not None and paid > 0:
            money += f", ~${s.spent_usd + s.spent_usd / paid * to_go:.2f} projected"
        parts.append(money)
    parts.append(f"429s {s.rate_limited}")
    parts.append(f"retries {s.retries}")
    parts.append(f"in flight {s.in_flight}/{s.concurrency}")
    if to_go is not None and s.req_per_min > 0:
        parts.append(f"ETA {_duration(to_go / s.req_per_min * 60)}")
    if s.held_by:
        parts.append(f"held by {s.held_by}")
    if s.stopping:
        parts.append(f"stopping ({s.stopping})")
    return " | ".join(parts)


class ProgressLine:
    """Writes `format_line` to `stream`: in place on a TTY, a plain line every `plain_every_s` otherwise."""

    def __init__(self, stream: TextIO | None = None, *, plain_every_s: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_s = 0.5 if self.tty else plain_every_s
        self._width = 0

    def show(self, snapshot: Snapshot) -> None:
        line = format_line(snapshot)
        if self.tty:
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self, snapshot: Snapshot) -> None:
        """The final state, and a newline so that what follows starts on its own line."""
        self.show(snapshot)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class ProgressDisplay(Protocol):
    interval_s: float

    def show(self, snapshot: Snapshot) -> None: ...

    def close(self, snapshot: Snapshot) -> None: ...


class ProgressBar:
    """The same figures as a tqdm bar (tqdm.auto: a widget in a notebook, text elsewhere): requests
    finished against the total when it is known, the rest of the line as its postfix."""

    interval_s = 0.5

    def __init__(self, description: str = "requests") -> None:
        from tqdm.auto import tqdm

        self._bar: Any = tqdm(total=None, desc=description, unit="req", dynamic_ncols=True)

    def show(self, snapshot: Snapshot) -> None:
        if snapshot.total is not None and self._bar.total != snapshot.total:
            self._bar.total = snapshot.total
        self._bar.n = snapshot.finished
        money = "$ unknown" if snapshot.spent_usd is None else f"${snapshot.spent_usd:.2f}"
        extra = [money, f"{snapshot.req_per_min:.0f} req/min", f"failed {snapshot.failed}",
                 f"cached {snapshot.cached}", f"429s {snapshot.rate_limited}"]
        if (g := snapshot.goal) is not None:
            extra.insert(0, f"{g.label} {g.done}/{g.target}")
        if snapshot.held_by:
            extra.append(f"held by {snapshot.held_by}")
        if snapshot.stopping:
            extra.append(f"stopping ({snapshot.stopping})")
        self._bar.set_postfix_str(", ".join(extra), refresh=False)
        self._bar.refresh()

    def close(self, snapshot: Snapshot) -> None:
        self.show(snapshot)
        self._bar.close()


_DISPLAY: ContextVar[Callable[[], ProgressDisplay] | None] = ContextVar("progress_display", default=None)


def progress_display() -> ProgressDisplay:
    """The display an engine run shows its progress on: the line on stderr, unless `use_display` chose another."""
    make = _DISPLAY.get()
    return make() if make is not None else ProgressLine()


@contextmanager
def use_display(make: Callable[[], ProgressDisplay] | None) -> Iterator[None]:
    """Within the block (and the tasks and threads started with its context), engines show their
    progress on `make()`; None: the usual line."""
    token = _DISPLAY.set(make)
    try:
        yield
    finally:
        _DISPLAY.reset(token)
