"""Counters served at GET /sim/stats, for tests and benchmarks."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .config import SIGNATURE


@dataclass
class SimStats:
    started_at: float = field(default_factory=time.monotonic)
    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)  # answered requests only
    chat_completions: int = 0  # chat requests that reached the handler (any outcome)
    rate_limited: int = 0  # 429s from the RPM/TPM buckets (injected 429s are faults)
    faults: Counter[str] = field(default_factory=Counter)
    prompt_tokens: int = 0  # of 200 answers (malformed bodies and truncations included)
    cached_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    tpm_counted: int = 0  # tokens counted against the TPM limit (reserve: prompt + max_tokens)

    def snapshot(self, connections_total: int, connections_open: int) -> dict[str, Any]:
        return {
            "simulator": SIGNATURE,
            "uptime_s": round(time.monotonic() - self.started_at, 3),
            "requests": self.requests,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "chat_completions": self.chat_completions,
            "rate_limited": self.rate_limited,
            "faults": dict(sorted(self.faults.items())),
            "tokens": {
                "prompt": self.prompt_tokens,
                "cached": self.cached_tokens,
                "completion": self.completion_tokens,
                "reasoning": self.reasoning_tokens,
                "total": self.prompt_tokens + self.completion_tokens,
                "tpm_counted": self.tpm_counted,
            },
            "connections": {"total": connections_total, "open": connections_open},
        }
