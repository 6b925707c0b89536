"""The crash-budget part of the engine benchmark: runs under `--max-cost`, each killed with `kill -9`
at a random moment (requests in flight), then rerun; at the end, what the simulator answered, priced
at the model's price, against the cap.

    python bench/engine_crash.py drive RUN_DIR BASE_URL N MAX_COST   # one run (the child process)

`measure` (called by bench/engine.py) starts the children and kills them.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from factory.engine import ChatRequest, ChatResult, Engine, EngineSettings, Ledger  # noqa: E402
from factory.engine.pricing import PriceTable  # noqa: E402
from schemas import Usage  # noqa: E402

MODEL = "gpt-4o-mini"
MAX_TOKENS = 400


def drive(run_dir: Path, url: str, n: int, max_cost: float) -> int:
    """One run: n requests under the budget; prints the run's stats as JSON."""
    requests = [ChatRequest("crash-bench", MODEL, [{"role": "user", "content": f"Crash budget question {i}."}],
                            {"max_tokens": MAX_TOKENS}) for i in range(n)]
    settings = EngineSettings(base_url=url, max_concurrency=32, timeout_s=30, progress=False, max_cost=max_cost)
    with Ledger.for_run(run_dir) as ledger:
        engine = Engine(settings, ledger, api_key="sk-bench-crash-0000")

        def on_result(result: ChatResult) -> None:
            pass

        stats = anyio.run(engine.run, requests, on_result, n)
    print(json.dumps(stats.to_dict()), flush=True)
    return 0


def _rows(run_dir: Path) -> int:
    """Attempts and results in the ledger: it grows once a run sends (an attempt's row is written
    before it goes)."""
    path = run_dir / "ledger.sqlite"
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            (n,) = db.execute("SELECT (SELECT COUNT(*) FROM attempts) + (SELECT COUNT(*) FROM requests)").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return 0
    return int(n)


def measure(url: str, run_dir: Path, *, kills: int, max_cost: float, seed: int = 1) -> dict[str, Any]:
    """`kills` runs killed at a random moment (0.2-2 s after their first request), then one run to the
    end (the budget)."""
    rng = random.Random(seed)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, __file__, "drive", str(run_dir), url, "100000", str(max_cost)]
    killed_at: list[float] = []
    for _ in range(kills):
        before = _rows(run_dir)
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        # Kill only once requests are going out (the start of a process can take seconds on a busy
        # machine, and a kill before the first request tests nothing), at a random moment after.
        while proc.poll() is None and _rows(run_dir) <= before:
            time.sleep(0.05)
        wait = round(rng.uniform(0.2, 2.0), 2)
        time.sleep(wait)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed_at.append(wait)
        proc.wait(30)
    last = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    if last.returncode != 0:
        raise RuntimeError(f"the last run failed: {last.stderr[-2000:]}")
    stats = json.loads(last.stdout.strip().splitlines()[-1])
    tokens = httpx.get(url.removesuffix("/v1") + "/sim/stats", timeout=10).json()["tokens"]
    billed = PriceTable.load().lookup(MODEL).cost(
        Usage(input_tokens=tokens["prompt"], cached_input_tokens=tokens["cached"], output_tokens=tokens["completion"]))
    with Ledger.for_run(run_dir) as ledger:
        recorded = ledger.spent_usd()
        unsettled, possibly = ledger.unsettled()
    return {
        "kills": len(killed_at), "killed_after_s": killed_at, "max_cost_usd": max_cost,
        "billed_by_server_usd": round(billed, 6), "within_cap": billed <= max_cost,
        "recorded_usd": round(recorded, 6),
        "possibly_billed_attempts": unsettled, "possibly_billed_worst_usd": round(possibly, 6),
        "last_run_stopped": stats["stopped_reason"], "server_answered_tokens": tokens,
    }


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "drive":
        sys.exit(drive(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])))
    sys.exit("usage: python bench/engine_crash.py drive RUN_DIR BASE_URL N MAX_COST (bench/engine.py runs it)")
