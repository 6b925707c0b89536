"""Fault injection: which fault, if any, a chat request gets.

Kinds:
  500 502 503 504  an OpenAI-style server error body with that status
  429              a rate-limit error with retry-after (SimConfig.fault_retry_after_s)
  drop             the connection is closed without an answer
  hang             no answer at all; the connection stays open until the client gives up
  malformed        status 200 with a body that is not valid JSON (cut short)
  length           a normal answer cut short with finish_reason "length"

Random faults: `fault_rates` ({"500": 0.02, "drop": 0.01, ...}), drawn per request from the
request's own hash, so a given seed and request gives the same fault whatever the order or
concurrency (and a retry of the same request, a new attempt, draws afresh).

Forced faults, for tests (the force wins over the rates):
  - header `x-sim-fault: KIND` or `KIND*N`, or
  - the text `[[sim-fault:KIND]]` or `[[sim-fault:KIND*N]]` in the last user message.
`*N` faults only the first N attempts of that exact request (same body), so "500*2" means two
500s and then a normal answer: the shape a retry test needs. `none` suppresses random faults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS: tuple[str, ...] = ("500", "502", "503", "504", "429", "drop", "hang", "malformed", "length")
ERROR_STATUSES = frozenset({"500", "502", "503", "504"})
FAULT_HEADER = "x-sim-fault"
TRIGGER_RE = re.compile(r"\[\[sim-fault:([a-z0-9]+(?:\*\d+)?)\]\]")


class FaultSpecError(ValueError):
    """A fault spec that cannot be used; the message says what to write instead."""


@dataclass(frozen=True)
class ForcedFault:
    kind: str  # one of KINDS, or "none"
    times: int | None  # None: every attempt

    def applies(self, attempt: int) -> bool:
        """attempt counts from 0 for the first time this exact request is seen."""
        return self.kind != "none" and (self.times is None or attempt < self.times)


def parse_forced(spec: str) -> ForcedFault:
    kind, star, times = spec.strip().lower().partition("*")
    if kind not in KINDS and kind != "none":
        raise FaultSpecError(f"unknown fault {kind!r}; use one of {', '.join(KINDS)} or none, optionally with *N")
    if not star:
        return ForcedFault(kind, None)
    if not times.isdigit() or int(times) < 1:
        raise FaultSpecError(f"bad repeat count in fault {spec!r}; write KIND*N with N >= 1, e.g. 500*2")
    return ForcedFault(kind, int(times))


def find_trigger(last_user_text: str) -> str | None:
    match = TRIGGER_RE.search(last_user_text)
    return match.group(1) if match else None


def parse_rates(spec: str) -> dict[str, float]:
    """"500=0.02,drop=0.01" -> {"500": 0.02, "drop": 0.01}, checked."""
    rates: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        kind, eq, value = item.partition("=")
        kind = kind.strip().lower()
        if not eq:
            raise FaultSpecError(f"fault rate {item!r} needs KIND=RATE, e.g. 500=0.02")
        try:
            rates[kind] = float(value)
        except ValueError:
            raise FaultSpecError(f"fault rate {item!r}: {value!r} is not a number between 0 and 1") from None
    check_rates(rates)
    return rates


def check_rates(rates: dict[str, float]) -> None:
    for kind, rate in rates.items():
        if kind not in KINDS:
            raise FaultSpecError(f"unknown fault kind {kind!r}; use one of {', '.join(KINDS)}")
        if not 0.0 <= rate <= 1.0:
            raise FaultSpecError(f"fault rate for {kind} is {rate}; it must be between 0 and 1")
    if sum(rates.values()) > 1.0 + 1e-9:
        raise FaultSpecError(f"fault rates add up to {sum(rates.values()):.3f}; their sum must be at most 1")


def draw(rates: dict[str, float], u: float) -> str | None:
    """The fault for a uniform draw `u` in [0, 1): kinds take consecutive slices of [0, 1)."""
    edge = 0.0
    for kind in KINDS:
        edge += rates.get(kind, 0.0)
        if u < edge:
            return kind
    return None
