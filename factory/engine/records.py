"""The engine's public records: what to ask (`ChatRequest`), what came back (`ChatResult`), and
what a run did (`RunStats`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import Any

from factory.errors import RequestError
from factory.engine.money import usd
from schemas import LLMCall, Usage


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to make. `key` (the ledger's) hashes model, messages and params;
    `meta` is not hashed and rides along to the result. Identical requests are one request:
    to sample the same prompt several times, give each a different `params["seed"]`."""

    stage: str  # "self-instruct", "questions", "answers", "judge", ...
    model: str
    messages: list[dict[str, str]]
    params: dict[str, Any]  # max_tokens (required), temperature, response_format, seed, ...
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    _key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.stage or not self.model:
            raise RequestError("a ChatRequest needs a stage and a model")
        if not self.messages or not all(isinstance(m, dict) and m.get("role") for m in self.messages):
            raise RequestError("ChatRequest.messages must be a non-empty list of {'role': ..., 'content': ...}")
        limit = self.params.get("max_tokens", self.params.get("max_completion_tokens"))
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise RequestError(
                "ChatRequest.params needs max_tokens (or max_completion_tokens) as a positive integer: "
                "the rate limiter and the budget reserve it before sending"
            )
        if self.params.get("stream"):
            raise RequestError("the engine does not stream: drop params['stream']")
        if self.params.get("n", 1) != 1:
            raise RequestError("n > 1 is not supported: send one request per sample (vary params['seed'])")
        try:
            canonical = json.dumps(
                [self.model, self.messages, self.params], sort_keys=True, ensure_ascii=False, separators=(",", ":")
            )
        except TypeError as e:
            raise RequestError(f"ChatRequest messages and params must be plain JSON values: {e}") from None
        object.__setattr__(self, "_key", hashlib.sha256(canonical.encode()).hexdigest())

    @property
    def key(self) -> str:
        """sha256 of the canonical JSON of (model, messages, params)."""
        return self._key

    @property
    def max_output_tokens(self) -> int:
        return int(self.params.get("max_tokens", self.params.get("max_completion_tokens")))


@dataclass
class ChatResult:
    request: ChatRequest
    call: LLMCall  # status, content, finish_reason, usage, cost_usd, latency_s, attempts, error
    cached: bool  # True: from the ledger (an earlier run paid for it); nothing was paid now

    @property
    def ok(self) -> bool:
        return self.call.status == "done"

    @property
    def content(self) -> str | None:
        return self.call.content


@dataclass
class RunStats:
    requests: int = 0  # pulled from the caller
    done: int = 0  # answered in this run
    failed: int = 0  # gave up (after retries, or not retryable)
    cached: int = 0  # done in an earlier run: given back from the ledger
    duplicates: int = 0  # the same key twice in this run: sent once
    sent: int = 0  # HTTP attempts
    retries: int = 0
    rate_limited: int = 0  # 429 answers
    usage: Usage = field(default_factory=Usage)  # of this run's answers (cached ones excluded)
    cost_usd: float | None = 0.0  # paid in this run; None when a model's price is unknown
    stopped_reason: str | None = None  # None (all done), "budget", "interrupted", "fatal"
    elapsed_s: float = 0.0
    endpoints: dict[str, dict[str, float]] = field(default_factory=dict)  # per server (several): done, tokens, tok/s

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (for a report's summary.json)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["usage"] = self.usage.model_dump()
        return out

    def summary(self) -> str:
        cost = usd(self.cost_usd)
        stopped = f"; stopped: {self.stopped_reason}" if self.stopped_reason else ""
        return (
            f"{self.done} done, {self.failed} failed, {self.cached} cached, {self.duplicates} duplicate; "
            f"{self.sent} HTTP attempts ({self.retries} retries, {self.rate_limited} rate-limited); "
            f"{self.usage.input_tokens} input + {self.usage.output_tokens} output tokens; {cost}; "
            f"{self.elapsed_s:.1f}s{stopped}"
        ) + (self.endpoints_line() if len(self.endpoints) > 1 else "")

    def endpoints_line(self) -> str:
        """'; per endpoint: URL 12 done, 31.5 output tok/s, ...' (several servers)."""
        return "; per endpoint: " + ", ".join(f"{url} {e['done']:.0f} done, {e['output_tokens_per_s']} output tok/s"
                                              for url, e in self.endpoints.items())



OnResult = Callable[[ChatResult], "None | Awaitable[None]"]
