"""How well the comparison's statistics recover what a planted judge knows: bench/results/compare_stats.json.

    python bench/compare_stats.py [--reps 200] [--questions 80] [--rounds 100]

Each repetition draws every verdict anew (judge.compare.planted: four models of known Bradley-Terry
strength against a baseline, ties, strong verdicts, a position bias of 0.15 in win probability), fits
the scores and their bootstrap intervals, and records whether the order came out right and whether each
interval covers the planted strength. The length part: two models of the baseline's quality, one with
answers 1.4 times as long and one 0.7 times, a judge with a length bias; the raw and the length-
controlled win rates of each. Prints a short table; figures with their provenance go to the file.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.provenance import write_result  # noqa: E402
from judge.compare.bt import bootstrap  # noqa: E402
from judge.compare.planted import length_outcomes, planted_games  # noqa: E402
from judge.compare.winrate import win_rates  # noqa: E402

PLANTED = {"a": -0.6, "b": -0.2, "c": 0.3, "d": 0.8}
VERBOSE, CONCISE = 1.4, 0.7  # answer length relative to the baseline's


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--questions", type=int, default=80)
    p.add_argument("--rounds", type=int, default=100)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "compare_stats.json")
    args = p.parse_args()

    covered = dict.fromkeys(PLANTED, 0)
    widths: list[float] = []
    ordered = 0
    t0 = time.perf_counter()
    for rep in range(args.reps):
        games = planted_games(PLANTED, args.questions, seed=10_000 + rep)
        iv = bootstrap(games, "base", rounds=args.rounds, seed=rep)
        ordered += sorted(PLANTED, key=lambda m: iv[m].theta) == sorted(PLANTED, key=PLANTED.get)
        for m, theta in PLANTED.items():
            covered[m] += iv[m].low <= theta <= iv[m].high
            widths.append(iv[m].high - iv[m].low)
    seconds = time.perf_counter() - t0

    raw_gaps, lc_gaps, lc_missing = [], [], 0
    for rep in range(args.reps):
        rng = random.Random(20_000 + rep)
        verbose, concise = win_rates(*length_outcomes(rng, VERBOSE)), win_rates(*length_outcomes(rng, CONCISE))
        if verbose.length_controlled is None or concise.length_controlled is None:
            lc_missing += 1  # the lengths never crossed the baseline's: no length-controlled rate
            continue
        raw_gaps.append(verbose.raw - concise.raw)
        lc_gaps.append(verbose.length_controlled - concise.length_controlled)

    total = args.reps * len(PLANTED)
    figures = {
        "planted_theta": PLANTED,
        "reps": args.reps, "questions": args.questions, "turns": 2, "bootstrap_rounds": args.rounds,
        "position_bias": 0.15,
        "coverage_95": sum(covered.values()) / total,
        "coverage_by_model": {m: c / args.reps for m, c in covered.items()},
        "mean_interval_width_theta": statistics.fmean(widths),
        "order_recovered_share": ordered / args.reps,
        "seconds_per_fit_and_bootstrap": seconds / args.reps,
        "length": {"verbose_ratio": VERBOSE, "concise_ratio": CONCISE, "questions": 300, "length_bias": 0.3,
                   "reps_without_lc_rate": lc_missing, "mean_abs_lc_gap_pp": 100 * statistics.fmean(map(abs, lc_gaps)),
                   "mean_raw_gap_pp": 100 * statistics.fmean(raw_gaps),
                   "mean_lc_gap_pp": 100 * statistics.fmean(lc_gaps),
                   "share_of_gap_removed": 1 - statistics.fmean(lc_gaps) / statistics.fmean(raw_gaps)},
    }
    write_result(args.out, figures)
    print(f"coverage of the 95% intervals: {figures['coverage_95']:.3f} ({total} intervals)")
    print(f"planted order recovered:       {figures['order_recovered_share']:.3f} of {args.reps} repetitions")
    print(f"raw win-rate gap (verbose - concise): {figures['length']['mean_raw_gap_pp']:.1f} pp; "
          f"length-controlled: {figures['length']['mean_lc_gap_pp']:.1f} pp")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
