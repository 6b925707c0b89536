"""The simulator's settings, checked when built: a bad value fails before the server starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .faults import FaultSpecError, check_rates
from .instructions import DEFAULT_DUPLICATE_SHARE

HOST = "127.0.0.1"  # loopback only: the simulator is never reachable from another machine
SIGNATURE = "instruct-factory-simulator"
API_KEY_ENV = "INSTRUCT_FACTORY_SIM_API_KEY"


class SimConfigError(ValueError):
    """A setting the simulator cannot run with; the message names the setting and what to use."""


@dataclass(frozen=True)
class SimConfig:
    port: int = 0  # 0: the system picks a free port (the bound URL is reported)
    seed: int = 0
    # Rate limits per model; None or 0: unlimited (and no x-ratelimit-* headers).
    rpm: int | None = None
    tpm: int | None = None
    # "reserve": prompt + max_tokens is spent at admission (OpenAI). "actual": the unused part
    # of max_tokens is given back when the answer is sent.
    tpm_accounting: Literal["reserve", "actual"] = "reserve"
    # Limits also enforced over this many seconds (OpenAI may enforce 600 RPM as 10 a second);
    # 0: over the minute only.
    limit_quantum_s: float = 1.0
    # Tokens counted at admission for a request without max_tokens: prompt + this.
    default_reserved_output: int | None = None  # None: output_tokens
    # Latency = base + per_token * completion tokens + uniform(0, jitter), seconds.
    latency_base_s: float = 0.0
    latency_per_token_s: float = 0.0
    jitter_s: float = 0.0
    # Completion length (plain text): normal around the mean with sd = spread * mean, >= 1.
    output_tokens: int = 200
    output_spread: float = 0.3
    # Share of new-task instructions that are near-copies of one of the model's favourite tasks
    # (factory.simulator.instructions): what a near-duplicate filter then drops.
    duplicate_share: float = DEFAULT_DUPLICATE_SHARE
    # Models whose name starts with one of these also report reasoning tokens, this share of
    # the visible answer (counted inside completion_tokens, as OpenAI does).
    reasoning_prefixes: tuple[str, ...] = ("o1", "o3", "o4", "gpt-5")
    reasoning_ratio: float = 0.5
    fault_rates: dict[str, float] = field(default_factory=dict)
    fault_retry_after_s: float = 1.0  # retry-after of an injected 429
    api_key: str | None = field(default=None, repr=False)  # None: any key (or none) is accepted
    models: tuple[str, ...] = ()  # empty: any model name is accepted
    cache_ttl_s: float = 600.0
    max_body_bytes: int = 32 * 1024 * 1024
    log_requests: bool = False
    # The server played for structured output (factory/simulator/servers.py): openai, vllm,
    # llamacpp (json_object with a schema; json_schema refused with a 500), textonly.
    server: str = "openai"
    # Requests answered at once; more wait in line (llama.cpp's server answers one at a time).
    # 0: no limit.
    slots: int = 0

    def __post_init__(self) -> None:
        from .servers import SERVERS

        if self.server not in SERVERS:
            raise SimConfigError(f"server is {self.server!r}; use one of {', '.join(SERVERS)}")
        if self.slots < 0:
            raise SimConfigError(f"slots is {self.slots}; use 0 (no limit) or a positive number")
        if not 0 <= self.port <= 65535:
            raise SimConfigError(f"port {self.port} is out of range; use 0 (any free port) to 65535")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise SimConfigError(f"{name} is {value}; use a positive limit, or 0 / none for no limit")
        if self.tpm_accounting not in ("reserve", "actual"):
            raise SimConfigError(f"tpm_accounting is {self.tpm_accounting!r}; use 'reserve' or 'actual'")
        if not 0 <= self.limit_quantum_s <= 60:
            raise SimConfigError(f"limit_quantum_s is {self.limit_quantum_s}; use 0 (the minute only) to 60 seconds")
        for name in ("latency_base_s", "latency_per_token_s", "jitter_s", "cache_ttl_s", "fault_retry_after_s"):
            if getattr(self, name) < 0:
                raise SimConfigError(f"{name} is {getattr(self, name)}; it must be >= 0")
        if self.output_tokens < 1:
            raise SimConfigError(f"output_tokens is {self.output_tokens}; the mean answer length must be >= 1")
        if not 0 <= self.output_spread <= 2:
            raise SimConfigError(f"output_spread is {self.output_spread}; use 0 (fixed length) to 2")
        if not 0 <= self.duplicate_share <= 1:
            raise SimConfigError(f"duplicate_share is {self.duplicate_share}; use 0 (every task new) to 1")
        if self.default_reserved_output is not None and self.default_reserved_output < 0:
            raise SimConfigError("default_reserved_output must be >= 0")
        if self.reasoning_ratio < 0:
            raise SimConfigError(f"reasoning_ratio is {self.reasoning_ratio}; it must be >= 0")
        if self.max_body_bytes < 1024:
            raise SimConfigError("max_body_bytes must be at least 1024")
        if self.api_key is not None and not self.api_key.strip():
            raise SimConfigError("api_key is empty; give a key, or none to accept any")
        try:
            check_rates(dict(self.fault_rates))
        except FaultSpecError as exc:
            raise SimConfigError(str(exc)) from None

    @property
    def reserved_output_default(self) -> int:
        return self.output_tokens if self.default_reserved_output is None else self.default_reserved_output

    def summary(self) -> str:
        """One line of the settings that shape behaviour (never the API key)."""
        parts = [f"seed={self.seed}", f"rpm={self.rpm or 'unlimited'}", f"tpm={self.tpm or 'unlimited'}"]
        if self.rpm or self.tpm:
            window = f"{self.limit_quantum_s:g}s windows" if self.limit_quantum_s else "minute windows"
            parts.append(f"accounting={self.tpm_accounting} ({window})")
        if self.latency_base_s or self.latency_per_token_s or self.jitter_s:
            parts.append(f"latency={self.latency_base_s}s+{self.latency_per_token_s}s/token+jitter {self.jitter_s}s")
        else:
            parts.append("latency=0")
        parts.append(f"output~{self.output_tokens} tokens")
        parts.append(f"duplicate_share={self.duplicate_share:g}")
        if self.fault_rates:
            parts.append("faults=" + ",".join(f"{k}={v}" for k, v in self.fault_rates.items()))
        if self.api_key:
            parts.append("api key required")
        if self.models:
            parts.append("models=" + ",".join(self.models))
        return " ".join(parts)

    def to_cli_args(self) -> list[str]:
        """Arguments for `python -m factory.simulator` that rebuild this config (the API key
        travels in the environment instead, see API_KEY_ENV)."""
        args = [
            "--port", str(self.port), "--seed", str(self.seed),
            "--rpm", str(self.rpm or 0), "--tpm", str(self.tpm or 0),
            "--tpm-accounting", self.tpm_accounting,
            "--limit-quantum", repr(self.limit_quantum_s),
            "--latency-base", repr(self.latency_base_s),
            "--latency-per-token", repr(self.latency_per_token_s),
            "--jitter", repr(self.jitter_s),
            "--output-tokens", str(self.output_tokens), "--output-spread", repr(self.output_spread),
            "--duplicate-share", repr(self.duplicate_share),
            "--fault-retry-after", repr(self.fault_retry_after_s),
            "--cache-ttl", repr(self.cache_ttl_s),
            "--reasoning-ratio", repr(self.reasoning_ratio),
            "--reasoning-models", ",".join(self.reasoning_prefixes),
            "--max-body-bytes", str(self.max_body_bytes),
        ]
        if self.default_reserved_output is not None:
            args += ["--default-reserved-output", str(self.default_reserved_output)]
        if self.fault_rates:
            args += ["--fault-rate", ",".join(f"{k}={v!r}" for k, v in self.fault_rates.items())]
        if self.models:
            args += ["--models", ",".join(self.models)]
        if self.log_requests:
            args.append("--log-requests")
        return args
