"""Engine benchmark against the simulator, run as a separate process (`python -m factory simulate`).

    just bench-engine            # the full benchmark (about 6 minutes on 2 cores)
    just bench-engine --quick    # a short smoke run (about 40 s)

Measures, and writes to bench/results/engine.json:
  overhead_req_per_s   requests/s with zero latency and no limits: what the engine itself costs
                       (also as CPU ms per request of the engine's process)
  tpm_utilization      tokens/min sent / TPM limit over 60 s at RPM=600, TPM=150,000, latency
  rpm_utilization      0.5-3 s, ~300 output tokens per answer (after a 10 s warm-up; the same
                       window from the start is in the details); requests/min sent / RPM limit;
  rate_429             share of HTTP attempts answered 429
  rss_growth_mb        resident memory growth of the engine's process over 100,000 requests

"Sent" counts each request at the moment its answered attempt went out (finish time minus its
latency), so answers still in flight at the end of the window are counted in it, as a server's
limiter counts them. The simulator gives back the unused part of max_tokens (--tpm-accounting
actual), as the engine's own limiter assumes; see the notes in the results for both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import openai
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from factory.engine import ChatRequest, ChatResult, Engine, http_client_name  # noqa: E402
from factory.engine.ledger import Ledger  # noqa: E402
from factory.engine.settings import EngineSettings  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "engine.json"
MODEL = "gpt-4o-mini"
TARGETS = {"overhead_req_per_s": ">= 500", "tpm_utilization": ">= 0.95", "rate_429": "<= 0.01", "rss_growth_mb": "<= 100"}
_BANNER = re.compile(r"simulator listening on (http://\S+/v1)")


@contextmanager
def simulator(*args: str) -> Iterator[str]:
    """`python -m factory simulate --port 0 ARGS` in its own process; yields its base URL."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "factory", "simulate", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    url: list[str] = []

    def read_banner() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if m := _BANNER.search(line):
                url.append(m.group(1))
                return

    reader = threading.Thread(target=read_banner, daemon=True)
    reader.start()
    reader.join(30)
    try:
        if not url:
            raise RuntimeError(f"the simulator did not start (exit code {proc.poll()})")
        yield url[0]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def sim_stats(url: str) -> dict[str, Any]:
    return httpx.get(url.removesuffix("/v1") + "/sim/stats", timeout=10).json()


def request(i: int, max_tokens: int) -> ChatRequest:
    prompt = f"Request {i}: explain in a few paragraphs how a token bucket rate limiter works, with an example."
    return ChatRequest("bench", MODEL, [{"role": "user", "content": prompt}], {"max_tokens": max_tokens})


def engine(url: str, run_dir: Path, http_client: Any = None, **settings: Any) -> Engine:
    ledger = Ledger.for_run(run_dir)
    return Engine(EngineSettings(base_url=url, progress=False, **settings), ledger, api_key="sk-bench-0000",
                  http_client=http_client)


# --- 1. overhead ---------------------------------------------------------------------------------


def bench_overhead(n: int, concurrency: int, force_httpx2: bool = False) -> dict[str, Any]:
    """The engine's default HTTP client, or the SDK's httpx2 one when `force_httpx2`."""

    def client() -> Any:
        return openai.DefaultAsyncHttpxClient(timeout=60) if force_httpx2 else None

    with simulator("--output-tokens", "20", "--output-spread", "0") as url, tempfile.TemporaryDirectory() as tmp:
        eng = engine(url, Path(tmp) / "warm", client(), max_concurrency=concurrency)
        anyio.run(eng.run, (request(i, 30) for i in range(300)), lambda r: None)  # warm up
        eng = engine(url, Path(tmp) / "run", client(), max_concurrency=concurrency)
        cpu0, t0 = time.process_time(), time.perf_counter()
        stats = anyio.run(eng.run, (request(i, 30) for i in range(n)), lambda r: None)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    assert stats.done == n, stats.summary()
    return {"requests": n, "max_concurrency": concurrency, "http_client": "httpx2" if force_httpx2 else http_client_name(),
            "seconds": round(wall, 2), "req_per_s": round(n / wall, 1), "cpu_ms_per_req": round(cpu / n * 1000, 3),
            # Derived, not measured: the rate if the engine's process had a core to itself (the
            # wall-clock rate drops when other work shares the machine's cores).
            "cpu_bound_req_per_s": round(n / cpu, 1)}


# --- 2. limits -----------------------------------------------------------------------------------


def bench_limits(window_s: float, rpm: int, tpm: int, accounting: str, warmup_s: float = 10.0) -> dict[str, Any]:
    sim_args = ["--rpm", str(rpm), "--tpm", str(tpm), "--latency", "0.5-3", "--output-tokens", "300",
                "--tpm-accounting", accounting, "--seed", "1"]
    with simulator(*sim_args) as url, tempfile.TemporaryDirectory() as tmp:
        eng = engine(url, Path(tmp) / "run", rpm=rpm, tpm=tpm, max_concurrency=64)
        sent: list[tuple[float, int]] = []  # (when the answered attempt went out, tokens)
        start = time.monotonic()

        async def produce() -> AsyncIterator[ChatRequest]:
            i = 0
            while time.monotonic() - start < warmup_s + window_s:  # pulled lazily: stop producing at the end
                yield request(i, 600)
                i += 1

        def on_result(result: ChatResult) -> None:
            call = result.call
            if call.status == "done" and call.latency_s is not None:
                sent.append((time.monotonic() - call.latency_s - start, call.usage.input_tokens + call.usage.output_tokens))

        stats = anyio.run(eng.run, produce(), on_result)
        server = sim_stats(url)
    in_window = [tokens for t, tokens in sent if warmup_s <= t < warmup_s + window_s]
    from_start = [tokens for t, tokens in sent if t < window_s]
    minutes = window_s / 60
    return {
        "window_s": window_s, "warmup_s": warmup_s, "rpm": rpm, "tpm": tpm, "tpm_accounting": accounting,
        "tpm_utilization": round(sum(in_window) / minutes / tpm, 4),
        "rpm_utilization": round(len(in_window) / minutes / rpm, 4),
        # The same window from the very start: the first request goes alone (the probe) and the
        # first refunds arrive only after the first answers, so the opening seconds run slower.
        "tpm_utilization_from_start": round(sum(from_start) / minutes / tpm, 4),
        "rate_429": round(stats.rate_limited / max(1, stats.sent), 4),
        "requests_done": stats.done, "requests_failed": stats.failed, "http_attempts": stats.sent,
        "server_rate_limited": server["rate_limited"],
        "mean_output_tokens": round(stats.usage.output_tokens / max(1, stats.done), 1),
    }


# --- 3. memory -----------------------------------------------------------------------------------


def bench_memory(n: int) -> dict[str, Any]:
    process = psutil.Process()
    with simulator("--output-tokens", "20", "--output-spread", "0") as url, tempfile.TemporaryDirectory() as tmp:
        eng = engine(url, Path(tmp) / "run", max_concurrency=32)
        samples: list[tuple[int, float]] = []
        count = 0
        base: list[float] = []

        def on_result(result: ChatResult) -> None:
            nonlocal count
            count += 1
            if count == 1000:  # after the warm-up: imports, connection pool, SQLite cache
                base.append(process.memory_info().rss / 2**20)
            if count % 10_000 == 0:
                samples.append((count, round(process.memory_info().rss / 2**20, 1)))

        t0 = time.perf_counter()
        stats = anyio.run(eng.run, (request(i, 30) for i in range(n)), on_result)
        wall = time.perf_counter() - t0
        end = process.memory_info().rss / 2**20
    assert stats.done == n, stats.summary()
    return {"requests": n, "rss_start_mb": round(base[0], 1), "rss_end_mb": round(end, 1),
            "rss_growth_mb": round(end - base[0], 1), "rss_samples_mb": samples, "req_per_s": round(n / wall, 1)}


PARTS = ("overhead", "limits", "memory")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a short smoke run (smaller counts, a 15 s window)")
    p.add_argument("--parts", default=",".join(PARTS),
                   help="which measurements to (re)run, e.g. overhead; the others keep their last results")
    p.add_argument("--reserve", action="store_true",
                   help="also run the limits scenario with OpenAI's own accounting (max_tokens spent at admission)")
    args = p.parse_args()
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    if unknown := set(parts) - set(PARTS):
        p.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")

    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    details: dict[str, Any] = dict(previous.get("details", {}))
    load_before = os.getloadavg()
    if "overhead" in parts:
        n = 1000 if args.quick else 5000
        details["overhead"] = bench_overhead(n, 32)
        # Without aiohttp installed the default IS httpx2; with it, measure httpx2 too, for comparison.
        details["overhead_httpx2"] = bench_overhead(n, 32, force_httpx2=True) if http_client_name() != "httpx2" else None
        for o in filter(None, (details["overhead"], details["overhead_httpx2"])):
            print(f"overhead ({o['http_client']}): {o['req_per_s']} req/s, {o['cpu_ms_per_req']} ms CPU per request", flush=True)
    window, warmup = (15.0, 5.0) if args.quick else (60.0, 10.0)
    if "limits" in parts:
        limits = details["limits"] = bench_limits(window, 600, 150_000, "actual", warmup)
        print(f"limits: TPM {limits['tpm_utilization']:.3f}, RPM {limits['rpm_utilization']:.3f}, "
              f"429s {limits['rate_429']:.4f}", flush=True)
    if args.reserve:
        details["limits_reserve_accounting"] = bench_limits(window, 600, 150_000, "reserve", warmup)
    if "memory" in parts:
        details["memory"] = bench_memory(5_000 if args.quick else 100_000)
        print(f"memory: +{details['memory']['rss_growth_mb']} MB over {details['memory']['requests']} requests", flush=True)

    def pick(part: str, key: str) -> Any:
        return details.get(part, {}).get(key)

    results = {
        "overhead_req_per_s": pick("overhead", "req_per_s"),
        "overhead_cpu_ms_per_req": pick("overhead", "cpu_ms_per_req"),
        "overhead_cpu_bound_req_per_s": pick("overhead", "cpu_bound_req_per_s"),
        "http_client": pick("overhead", "http_client"),
        "tpm_utilization": pick("limits", "tpm_utilization"),
        "rpm_utilization": pick("limits", "rpm_utilization"),
        "rate_429": pick("limits", "rate_429"),
        "rss_growth_mb": pick("memory", "rss_growth_mb"),
        "targets": TARGETS,
        "quick": args.quick,
        "details": details,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()], "parts_run": parts},
        "notes": ("The simulator runs in its own process on the same machine. A load average above the CPU "
                  "count means other work shared the cores, which lowers overhead_req_per_s."),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    print(f"\n{'metric':<22}{'measured':>12}  target")
    for name in ("overhead_req_per_s", "tpm_utilization", "rpm_utilization", "rate_429", "rss_growth_mb"):
        print(f"{name:<22}{results[name]!s:>12}  {TARGETS.get(name, '')}")
    if httpx2 := details.get("overhead_httpx2"):
        print(f"(overhead with the SDK's httpx2 client instead of aiohttp: {httpx2['req_per_s']} req/s)")
    if reserve := details.get("limits_reserve_accounting"):
        print(f"(reserve accounting: TPM {reserve['tpm_utilization']}, 429s {reserve['rate_429']})")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
