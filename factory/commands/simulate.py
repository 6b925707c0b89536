"""`python -m factory simulate ...` (and `python -m factory.simulator ...`): run the simulator."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Any

from factory.simulator.batch_config import BatchSimConfig, add_batch_arguments, batch_config_from_args
from factory.simulator.config import API_KEY_ENV, SimConfig, SimConfigError
from factory.simulator.faults import KINDS, FaultSpecError, parse_rates
from factory.simulator.instructions import DEFAULT_DUPLICATE_SHARE
from factory.simulator.server import BANNER, Simulator, SimulatorError
from factory.simulator.servers import SERVERS

DEFAULT_PORT = 8800


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0 = any free port)")
    p.add_argument("--seed", type=int, default=0, help="same seed + same requests = same answers and faults (default 0)")
    p.add_argument("--rpm", type=int, default=0, help="requests per minute per model (0 = unlimited)")
    p.add_argument("--tpm", type=int, default=0, help="tokens per minute per model, counting prompt + max_tokens (0 = unlimited)")
    p.add_argument("--tpm-accounting", choices=("reserve", "actual"), default="reserve",
                   help="reserve: max_tokens is spent at admission, as OpenAI does (default); "
                        "actual: the unused part is given back when the answer is sent")
    p.add_argument("--limit-quantum", type=float, default=1.0, metavar="SECONDS",
                   help="also enforce each per-minute limit over windows this short, as OpenAI may "
                        "(600 RPM as 10 a second; default 1; 0: over the minute only)")
    p.add_argument("--default-reserved-output", type=int, default=None,
                   help="tokens reserved for the answer when a request has no max_tokens (default: --output-tokens)")
    p.add_argument("--latency", default=None, metavar="MIN[-MAX]",
                   help="seconds per answer, uniform in MIN..MAX (e.g. 0.5-3); the same as "
                        "--latency-base MIN --jitter MAX-MIN")
    p.add_argument("--latency-base", type=float, default=None, help="fixed seconds per answer (default 0)")
    p.add_argument("--latency-per-token", type=float, default=0.0, help="extra seconds per completion token (default 0)")
    p.add_argument("--jitter", type=float, default=None, help="extra uniform 0..JITTER seconds (default 0)")
    p.add_argument("--output-tokens", type=int, default=200, help="mean completion length of a text answer (default 200)")
    p.add_argument("--output-spread", type=float, default=0.3, help="sd of the length as a share of the mean (default 0.3)")
    p.add_argument("--duplicate-share", type=float, default=DEFAULT_DUPLICATE_SHARE, metavar="SHARE",
                   help="share of new-task instructions that are near-copies of a favourite task, what a "
                   f"near-duplicate filter drops (default {DEFAULT_DUPLICATE_SHARE}; 0 = every task new)")
    p.add_argument("--reasoning-ratio", type=float, default=0.5,
                   help="reasoning tokens per visible token for o1/o3/o4/gpt-5 models (default 0.5)")
    p.add_argument("--reasoning-models", default="o1,o3,o4,gpt-5",
                   help="model-name prefixes that report reasoning tokens (default o1,o3,o4,gpt-5; empty: none)")
    p.add_argument("--fault-rate", default="", metavar="KIND=RATE,...",
                   help=f"random faults, e.g. 500=0.02,drop=0.01,hang=0.005,malformed=0.01,length=0.02; "
                        f"kinds: {', '.join(KINDS)}. Force one per request with the header x-sim-fault: KIND[*N] "
                        "or [[sim-fault:KIND[*N]]] in the last user message")
    p.add_argument("--fault-retry-after", type=float, default=1.0, help="retry-after seconds of an injected 429 (default 1)")
    p.add_argument("--api-key", default=os.environ.get(API_KEY_ENV),
                   help=f"answer 401 to any other key (default: ${API_KEY_ENV}, else accept any key)")
    p.add_argument("--models", default="", help="comma-separated models to accept; others get 404 model_not_found (default: any)")
    p.add_argument("--cache-ttl", type=float, default=600.0, help="seconds a prompt prefix stays cached (default 600)")
    p.add_argument("--max-body-bytes", type=int, default=32 * 1024 * 1024, help="largest request body accepted (default 32 MiB)")
    p.add_argument("--log-requests", action="store_true", help="one stderr line per request (slows it down)")
    p.add_argument("--server", choices=SERVERS, default="openai",
                   help="the server played for structured output: openai, vllm, llamacpp (json_object with a "
                        "schema; json_schema refused with a 500), textonly (default openai)")
    p.add_argument("--slots", type=int, default=0,
                   help="requests answered at once, the others wait in line (llama.cpp's server: 1; default 0: any)")
    add_batch_arguments(p)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "simulate",
        help="run a local OpenAI-compatible simulator (simulated answers, for tests and demos)",
        description="A local OpenAI-compatible HTTP server on 127.0.0.1 that answers with SIMULATED text "
                    "and enforces RPM/TPM, latency and faults. Not a model.",
    )
    add_arguments(p)
    p.set_defaults(func=main)
    return p


def _latency(args: argparse.Namespace) -> tuple[float, float]:
    base = args.latency_base if args.latency_base is not None else 0.0
    jitter = args.jitter if args.jitter is not None else 0.0
    if args.latency is None:
        return base, jitter
    if args.latency_base is not None or args.jitter is not None:
        raise SimConfigError("--latency MIN-MAX already sets the base and the jitter; drop --latency-base / --jitter")
    low_text, _, high_text = args.latency.partition("-")
    try:
        low = float(low_text)
        high = float(high_text) if high_text else low
    except ValueError:
        raise SimConfigError(f"--latency {args.latency!r}: write seconds as MIN or MIN-MAX, e.g. 0.5-3") from None
    if high < low:
        raise SimConfigError(f"--latency {args.latency!r}: MAX is below MIN")
    return low, high - low


def config_from_args(args: argparse.Namespace) -> SimConfig:
    base, jitter = _latency(args)
    try:
        rates = parse_rates(args.fault_rate)
    except FaultSpecError as exc:
        raise SimConfigError(f"--fault-rate: {exc}") from None
    return SimConfig(
        port=args.port,
        seed=args.seed,
        rpm=args.rpm or None,
        tpm=args.tpm or None,
        tpm_accounting=args.tpm_accounting,
        limit_quantum_s=args.limit_quantum,
        default_reserved_output=args.default_reserved_output,
        latency_base_s=base,
        latency_per_token_s=args.latency_per_token,
        jitter_s=jitter,
        output_tokens=args.output_tokens,
        output_spread=args.output_spread,
        duplicate_share=args.duplicate_share,
        reasoning_ratio=args.reasoning_ratio,
        reasoning_prefixes=tuple(m.strip() for m in args.reasoning_models.split(",") if m.strip()),
        fault_rates=rates,
        fault_retry_after_s=args.fault_retry_after,
        api_key=args.api_key or None,
        models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
        cache_ttl_s=args.cache_ttl,
        max_body_bytes=args.max_body_bytes,
        log_requests=args.log_requests,
        server=args.server,
        slots=args.slots,
    )


async def _serve(config: SimConfig, batch_config: BatchSimConfig) -> Simulator:
    simulator = Simulator(config, batch_config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def ready(url: str) -> None:
        print(BANNER.format(url=url), flush=True)
        print(f"simulator settings: {config.summary()}", file=sys.stderr, flush=True)

    await simulator.serve(ready, stop)
    return simulator


def main(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        batch_config = batch_config_from_args(args)
    except SimConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if config.log_requests and not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    try:
        simulator = asyncio.run(_serve(config, batch_config))
    except SimulatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    s = simulator.stats
    print(f"simulator stopped: {s.requests} requests, {s.rate_limited} rate-limited, "
          f"{sum(s.faults.values())} faults, {s.prompt_tokens + s.completion_tokens} tokens served", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m factory.simulator", description="Run the OpenAI-compatible simulator.")
    add_arguments(p)
    p.set_defaults(func=main)
    return p
