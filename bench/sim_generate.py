"""A long self-instruct run against the simulator: does it reach --n, and what share of what the
simulator writes does the near-duplicate check drop? Writes bench/results/sim_generate.json.

    python bench/sim_generate.py --n 100000            # about 10 minutes on 2 cores
    python bench/sim_generate.py --n 2000 --duplicate-share 0.3

The simulator (limits off, no latency, its default text model unless --duplicate-share is given)
runs in a child process; `python -m factory generate --recipe self-instruct` runs in this
process's child too, as a user runs it. Reported: the simulator's requests, the run's seconds,
kept examples, rejections by reason and the duplicate share (duplicates / candidates).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.provenance import write_result

from factory.simulator import SimConfig
from factory.simulator.server import run_simulator_process
from schemas import Example, Rejected, read_jsonl


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="examples to keep")
    ap.add_argument("--lang", choices=("en", "ko"), default="en", help="seed tasks: examples/seed_tasks_LANG.jsonl")
    ap.add_argument("--duplicate-share", type=float, default=None, help="the simulator's setting (default: its default)")
    ap.add_argument("--output-tokens", type=int, default=60, help="the simulator's mean answer length")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sim_generate.json")
    args = ap.parse_args(argv)
    extra = {} if args.duplicate_share is None else {"duplicate_share": args.duplicate_share}
    sim = SimConfig(seed=0, output_tokens=args.output_tokens, **extra)
    with tempfile.TemporaryDirectory(prefix="sim-generate-") as tmp, run_simulator_process(sim) as url:
        run = Path(tmp) / "run"
        command = [sys.executable, "-m", "factory", "generate", "--run", str(run), "--recipe", "self-instruct",
                   "--seeds", str(ROOT / "examples" / f"seed_tasks_{args.lang}.jsonl"), "--n", str(args.n),
                   "--model", "gpt-4o-mini", "--base-url", url, "--no-progress"]
        t0 = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        stats = httpx.get(url.removesuffix("/v1") + "/sim/stats").json()
        kept = sum(1 for _ in read_jsonl(run / "examples.jsonl", Example))
        reasons = Counter(r.reason for r in read_jsonl(run / "rejected.jsonl", Rejected))
    candidates = kept + sum(reasons.values())
    figures = {
        "target": args.n, "reached": kept >= args.n, "exit_code": done.returncode,
        "kept": kept, "requests": stats["chat_completions"], "seconds": seconds,
        "kept_per_s": kept / seconds, "candidates": candidates,
        "rejected_by_reason": dict(reasons.most_common()),
        "duplicate_share": reasons["duplicate"] / max(candidates, 1),
        "simulator": {"duplicate_share": sim.duplicate_share, "output_tokens": sim.output_tokens, "seed": sim.seed,
                      "limits": "off", "latency_s": 0},
        "lang": args.lang, "generate_output_tail": done.stdout[-600:] + done.stderr[-600:],
    }
    write_result(args.out, figures)
    print(f"{kept:,} of {args.n:,} kept in {seconds:.0f}s, {figures['requests']:,} requests; duplicate share "
          f"{figures['duplicate_share']:.3f} (simulator setting {sim.duplicate_share}); rejected {dict(reasons)} "
          f"-> {args.out}")
    return 0 if kept >= args.n and done.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
