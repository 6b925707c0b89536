"""Engine benchmark against the simulator, run as a separate process (`python -m factory simulate`).

    just bench-engine            # the full benchmark (about 8 minutes on 2 cores)
    just bench-engine --quick    # a short smoke run (about a minute)

Measures, in one run, and writes to bench/results/engine.json (with its provenance):
  overhead_req_per_s   requests/s with zero latency and no limits: what the engine itself costs
                       (also as CPU ms per request of the engine's process)
  tpm_utilization      tokens/min counted by the server / TPM limit over 60 s, the simulator
  rpm_utilization      counting as OpenAI does (prompt + max_tokens at admission, nothing given
  rate_429             back, limits enforced over 1 s windows), RPM 600, TPM 150,000, latency
                       0.5-3 s, max_tokens 400, answers of ~300 tokens; the engine is given NO
                       limits: it learns them from the x-ratelimit-* headers. After a 10 s
                       warm-up; the same window from the start is in the details. rate_429 is
                       the share of HTTP attempts answered 429.
  rss_growth_mb        resident memory growth of the engine's process over 100,000 requests
  crash_within_cap     10 runs under --max-cost killed with kill -9 at random moments, then a
                       run to the end: what the simulator answered, priced, <= the cap

"Sent" counts each request at the moment its answered attempt went out (finish time minus its
latency), so answers still in flight at the end of the window are counted in it, as a server's
limiter counts them.
"""

from __future__ import annotations

import argparse
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
from bench import engine_crash  # noqa: E402
from bench.provenance import write_result  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "engine.json"
MODEL = "gpt-4o-mini"
TARGETS = {"overhead_req_per_s": ">= 500", "tpm_utilization": "0.95 - 1.0", "rate_429": "<= 0.01",
           "rss_growth_mb": "<= 100", "crash_within_cap": "true"}
MAX_TOKENS = 400
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


def bench_limits(window_s: float, rpm: int, tpm: int, warmup_s: float = 10.0) -> dict[str, Any]:
    """The simulator in OpenAI's accounting (its defaults: reserve, 1 s windows); the engine learns the limits."""
    sim_args = ["--rpm", str(rpm), "--tpm", str(tpm), "--latency", "0.5-3", "--output-tokens", "300", "--seed", "1"]
    with simulator(*sim_args) as url, tempfile.TemporaryDirectory() as tmp:
        eng = engine(url, Path(tmp) / "run", max_concurrency=64)
        sent: list[tuple[float, int]] = []  # (when the answered attempt went out, tokens the server counted)
        start = time.monotonic()

        async def produce() -> AsyncIterator[ChatRequest]:
            i = 0
            while time.monotonic() - start < warmup_s + window_s:  # pulled lazily: stop producing at the end
                yield request(i, MAX_TOKENS)
                i += 1

        def on_result(result: ChatResult) -> None:
            call = result.call
            if call.status == "done" and call.latency_s is not None:
                sent.append((time.monotonic() - call.latency_s - start, call.usage.input_tokens + MAX_TOKENS))

        stats = anyio.run(eng.run, produce(), on_result)
        server = sim_stats(url)
    in_window = [tokens for t, tokens in sent if warmup_s <= t < warmup_s + window_s]
    from_start = [tokens for t, tokens in sent if t < window_s]
    minutes = window_s / 60
    return {
        "window_s": window_s, "warmup_s": warmup_s, "rpm": rpm, "tpm": tpm,
        "server_accounting": "reserve (prompt + max_tokens), 1 s windows", "limits_given_to_engine": False,
        "max_tokens": MAX_TOKENS,
        "tpm_utilization": round(sum(in_window) / minutes / tpm, 4),
        "rpm_utilization": round(len(in_window) / minutes / rpm, 4),
        # The same window from the very start: the first request goes alone (the probe) and the
        # limits are known only from its answer, so the opening seconds run slower.
        "tpm_utilization_from_start": round(sum(from_start) / minutes / tpm, 4),
        "rate_429": round(stats.rate_limited / max(1, stats.sent), 4),
        "requests_done": stats.done, "requests_failed": stats.failed, "http_attempts": stats.sent,
        "server_rate_limited": server["rate_limited"],
        "server_tpm_counted_total": server["tokens"]["tpm_counted"],
        "mean_output_tokens": round(stats.usage.output_tokens / max(1, stats.done), 1),
        # What the answers used of what was reserved for them (the rest is counted all the same).
        "answers_share_of_max_tokens": round(stats.usage.output_tokens / max(1, stats.done) / MAX_TOKENS, 4),
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


def bench_crash(kills: int, max_cost: float) -> dict[str, Any]:
    with simulator("--latency", "0.5-3", "--output-tokens", "300", "--seed", "2") as url, \
            tempfile.TemporaryDirectory() as tmp:
        return engine_crash.measure(url, Path(tmp) / "run", kills=kills, max_cost=max_cost)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a short smoke run (smaller counts, a 15 s window, 3 kills)")
    args = p.parse_args()

    details: dict[str, Any] = {}
    load_before = os.getloadavg()
    n = 1000 if args.quick else 5000
    details["overhead"] = bench_overhead(n, 32)
    # Without aiohttp installed the default IS httpx2; with it, measure httpx2 too, for comparison.
    details["overhead_httpx2"] = bench_overhead(n, 32, force_httpx2=True) if http_client_name() != "httpx2" else None
    for o in filter(None, (details["overhead"], details["overhead_httpx2"])):
        print(f"overhead ({o['http_client']}): {o['req_per_s']} req/s, {o['cpu_ms_per_req']} ms CPU per request", flush=True)
    window, warmup = (15.0, 5.0) if args.quick else (60.0, 10.0)
    limits = details["limits"] = bench_limits(window, 600, 150_000, warmup)
    print(f"limits: TPM {limits['tpm_utilization']:.3f}, RPM {limits['rpm_utilization']:.3f}, "
          f"429s {limits['rate_429']:.4f}", flush=True)
    details["memory"] = bench_memory(5_000 if args.quick else 100_000)
    print(f"memory: +{details['memory']['rss_growth_mb']} MB over {details['memory']['requests']} requests", flush=True)
    crash = details["crash_budget"] = bench_crash(3 if args.quick else 10, 0.10)
    print(f"crash budget: billed ${crash['billed_by_server_usd']} of ${crash['max_cost_usd']} after {crash['kills']} kills",
          flush=True)

    results = {
        "overhead_req_per_s": details["overhead"]["req_per_s"],
        "overhead_cpu_ms_per_req": details["overhead"]["cpu_ms_per_req"],
        "overhead_cpu_bound_req_per_s": details["overhead"]["cpu_bound_req_per_s"],
        "http_client": details["overhead"]["http_client"],
        "tpm_utilization": limits["tpm_utilization"],
        "rpm_utilization": limits["rpm_utilization"],
        "rate_429": limits["rate_429"],
        "rss_growth_mb": details["memory"]["rss_growth_mb"],
        "crash_within_cap": crash["within_cap"],
        "crash_billed_usd": crash["billed_by_server_usd"],
        "crash_max_cost_usd": crash["max_cost_usd"],
        "targets": TARGETS,
        "quick": args.quick,
        "details": details,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "notes": ("The simulator runs in its own process on the same machine. A load average above the CPU "
                  "count means other work shared the cores, which lowers overhead_req_per_s; "
                  "overhead_cpu_bound_req_per_s is the rate with a core to itself (derived from CPU time)."),
    }
    write_result(RESULTS, results)

    print(f"\n{'metric':<22}{'measured':>12}  target")
    for name in ("overhead_req_per_s", "tpm_utilization", "rpm_utilization", "rate_429", "rss_growth_mb", "crash_within_cap"):
        print(f"{name:<22}{results[name]!s:>12}  {TARGETS.get(name, '')}")
    if httpx2 := details.get("overhead_httpx2"):
        print(f"(overhead with the SDK's httpx2 client instead of aiohttp: {httpx2['req_per_s']} req/s)")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
