"""How long the test suite takes, and whether it holds on a busy machine.

    python bench/test_suite.py quiet                 # the full suite, then the quick loop (-m "not slow")
    python bench/test_suite.py busy --runs 3         # RUNS full runs in a row, then one in a random order,
                                                     # each beside --hogs CPU-bound processes (default: one per core)

Runs pytest in this interpreter's environment (run it with ./dev, as `./dev just test` does) and writes
bench/results/test_suite_quiet.json or test_suite_busy.json: per run its exit code, the counts pytest
printed, its wall time, the load average at its end, and the failures by name. A busy run that fails
prints its failures and makes the script exit 1. A random order (tests/conftest.py's TEST_ORDER_SEED)
finds tests that lean on one another; its seed is stored, so the same order can be run again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.provenance import write_result  # noqa: E402

SUMMARY = re.compile(r"^=* ?(\d+ (?:passed|failed).*?) in ([\d.]+)s", re.MULTILINE)
COUNT = re.compile(r"(\d+) (passed|failed|skipped|deselected|errors?)")


def _hog() -> None:
    while True:
        pass


def run_suite(name: str, pytest_args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - t0
    out = done.stdout + done.stderr
    summary = SUMMARY.findall(out)
    counts = {kind.rstrip("s") if kind.startswith("error") else kind: int(n)
              for n, kind in COUNT.findall(summary[-1][0])} if summary else {}
    failures = re.findall(r"^(?:FAILED|ERROR) (\S+)", out, flags=re.MULTILINE)
    row = {"name": name, "pytest_args": pytest_args, **({"env": env} if env else {}), "exit": done.returncode,
           **counts, "pytest_seconds": float(summary[-1][1]) if summary else None,
           "wall_seconds": round(seconds, 1), "load_average_1m_at_end": round(os.getloadavg()[0], 2),
           "failures": failures}
    print(f"{name:<10} exit {done.returncode}  {summary[-1][0] if summary else out[-300:]!r}  {seconds:.0f} s  "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    for f in failures:
        print(f"    {f}", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["quiet", "busy"])
    parser.add_argument("--runs", type=int, default=3, help="busy: full runs in a row before the random-order one")
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 2, help="busy: CPU-bound processes beside each run")
    parser.add_argument("--seed", type=int, default=None, help="busy: TEST_ORDER_SEED of the random-order run")
    args = parser.parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    rows: list[dict[str, Any]] = []
    if args.mode == "quiet":
        rows.append(run_suite("full", []))
        rows.append(run_suite("quick", ["-m", "not slow"]))
        write_result(ROOT / "bench" / "results" / "test_suite_quiet.json", {"runs": rows}, started=started)
        return 0
    seed = args.seed if args.seed is not None else random.randrange(1, 100_000)
    hogs = [multiprocessing.Process(target=_hog, daemon=True) for _ in range(args.hogs)]
    for h in hogs:
        h.start()
    try:
        for i in range(args.runs):
            rows.append(run_suite(f"run-{i + 1}", []))
        rows.append(run_suite("random", [], env={"TEST_ORDER_SEED": str(seed)}))
    finally:
        for h in hogs:
            h.terminate()
    write_result(ROOT / "bench" / "results" / "test_suite_busy.json",
                 {"hogs": args.hogs, "random_order_seed": seed, "runs": rows,
                  "all_passed": all(r["exit"] == 0 for r in rows)}, started=started)
    return 0 if all(r["exit"] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
