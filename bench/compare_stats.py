"""How honest the judge's statistics are against planted truths: bench/results/compare_stats.json.

    python bench/compare_stats.py [--reps 2000] [--sizes 40 80] [--rounds 1000] [--lc-reps 300]

Three parts, each repetition drawing its data anew:

- strengths: four models of planted Bradley-Terry strength against a baseline, two turns of every
  question, both orders, ties, strong verdicts, a position bias, and question effects (each question
  shifts every model's strength by a shared and by an own normal draw, in both turns and orders).
  The truth is what the fit converges to under that judge (judge.compare.planted.strength_limit,
  an exact integral), not the planted theta: averaging a win probability over easy and hard
  questions pulls it toward 50%, and an interval can only be asked to cover what its estimate
  estimates. For each size: the coverage of the 95% intervals of every method of
  judge.reports.intervals from the same bootstrap rounds (and of the default method with the
  first 200 rounds only, the old default), their widths, and the coverage of the planted theta.
- single scores: the report's mean scores (judge.reports.stats.bootstrap_mean, question-level
  resampling, turns together) on scores with planted question effects (judge.reports.planted), the
  truth their exact mean; and the same with every item resampled on its own, as before.
- length control: three models (one of the baseline's quality with answers 1.4 times as long, one
  0.7 times, one better at equal length) judged with a length bias, on questions with a planted
  difficulty that answer lengths follow; the raw win rate and the length-controlled ones with and
  without the per-question difficulty term, against the exact win rate at equal length; and the
  same with no difficulty at all, where the term has nothing to find.

The benchmark pins numpy to one thread. Prints a short table; the figures and their provenance go
to the file.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads: one core
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.provenance import write_result  # noqa: E402
from judge.compare.bt import Replicates, replicates  # noqa: E402
from judge.compare.planted import (  # noqa: E402
    difficulty_verdicts,
    equal_length_win_rate,
    planted_games,
    strength_limit,
)
from judge.compare.winrate import ModelVerdicts, difficulty_win_rates, win_rates  # noqa: E402
from judge.reports.intervals import DEFAULT_METHOD, METHODS, endpoints  # noqa: E402
from judge.reports.planted import planted_scores, score_truth  # noqa: E402
from judge.reports.stats import DEFAULT_RESAMPLES, mean_replicates  # noqa: E402

CONFIDENCE = 0.95
PLANTED = {"a": -0.6, "b": -0.2, "c": 0.3, "d": 0.8}
QUESTION_SD, MODEL_SD, POSITION = 0.5, 0.5, 0.15
FEW_ROUNDS = 200  # the comparison's default before this benchmark
MEANS = {"low": 4.0, "mid": 6.5, "high": 8.5}  # planted latent mean scores
LC_MODELS = {"verbose": (0.0, 1.4), "concise": (0.0, 0.7), "better": (0.5, 1.0)}  # theta at equal length, length ratio
LC_SCENARIOS = {"difficulty_lengths_follow": {"sensitivity": 0.8, "length_follows": 0.3},
                "no_difficulty": {"sensitivity": 0.0, "length_follows": 0.0}}
LC_QUESTIONS = 300


def _summary(covered: np.ndarray, widths: np.ndarray, names: list[str]) -> dict[str, Any]:
    """covered, widths: (reps, models). The standard error of the coverage is that of the mean over
    repetitions of each repetition's share covered (a repetition's intervals share its questions)."""
    per_rep = covered.mean(axis=1)
    return {"coverage": float(covered.mean()), "coverage_se": float(per_rep.std(ddof=1) / np.sqrt(len(per_rep))),
            "coverage_by_model": {m: float(c) for m, c in zip(names, covered.mean(axis=0), strict=True)},
            "mean_width": float(widths.mean()), "median_width": float(np.median(widths))}


def _ends(r: Replicates, method: str, rounds: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    return endpoints(r.point, r.rounds if rounds is None else rounds, r.jackknife, confidence=CONFIDENCE,
                     n_groups=r.groups, method=method)  # type: ignore[arg-type]


def strengths(questions: int, reps: int, rounds: int) -> dict[str, Any]:
    names = list(PLANTED)
    truth = np.array([strength_limit(t, sd=float(np.hypot(QUESTION_SD, MODEL_SD)), position=POSITION)
                      for t in PLANTED.values()])
    planted = np.array(list(PLANTED.values()))
    keys = [*METHODS, f"{DEFAULT_METHOD}@{FEW_ROUNDS}"]
    covered = {k: np.zeros((reps, len(names)), bool) for k in keys}
    widths = {k: np.zeros((reps, len(names))) for k in keys}
    score_widths = np.zeros((reps, len(names)))
    covers_planted = np.zeros((reps, len(names)), bool)
    ordered = 0
    t0 = time.perf_counter()
    for rep in range(reps):
        games = planted_games(PLANTED, questions, seed=1_000_000 * questions + rep, position=POSITION,
                              question_sd=QUESTION_SD, model_sd=MODEL_SD)
        r = replicates(games, "base", rounds=rounds, seed=rep)
        col = [r.players[1:].index(m) for m in names]
        point = r.point[col]
        ordered += bool(np.all(np.diff(point) > 0))
        for k in keys:
            lo, hi = _ends(r, DEFAULT_METHOD, r.rounds[:FEW_ROUNDS]) if "@" in k else _ends(r, k)
            lo, hi = lo[col], hi[col]
            covered[k][rep] = (lo <= truth) & (truth <= hi)
            widths[k][rep] = hi - lo
            if k == DEFAULT_METHOD:
                covers_planted[rep] = (lo <= planted) & (planted <= hi)
                score_widths[rep] = 100 / (1 + np.exp(-hi)) - 100 / (1 + np.exp(-lo))
    seconds = time.perf_counter() - t0
    by_method = {k: {**_summary(covered[k], widths[k], names),
                     "bootstrap_rounds": FEW_ROUNDS if "@" in k else rounds} for k in keys}
    return {
        "questions": questions, "reps": reps, "intervals": reps * len(names), "method": DEFAULT_METHOD,
        "bootstrap_rounds": rounds, **_summary(covered[DEFAULT_METHOD], widths[DEFAULT_METHOD], names),
        "mean_width_score_points": float(score_widths.mean()),
        "coverage_of_planted_theta": float(covers_planted.mean()),
        "order_recovered_share": ordered / reps,
        "by_method": by_method,
        "seconds": seconds,
    }


def single_scores(questions: int, reps: int, resamples: int) -> dict[str, Any]:
    names = list(MEANS)
    truth = np.array([score_truth(MEANS[m]) for m in names])
    keys = [*METHODS, "items:percentile"]  # the last: every item its own resampling unit (the old report)
    covered = {k: np.zeros((reps, len(names)), bool) for k in keys}
    widths = {k: np.zeros((reps, len(names))) for k in keys}
    rng = np.random.default_rng(questions)
    t0 = time.perf_counter()
    for rep in range(reps):
        data = planted_scores(MEANS, questions, rng)
        for i, m in enumerate(names):
            values, ids = data[m]
            by_question = mean_replicates(values[:, None], ids, n_resamples=resamples, seed=rep)
            by_item = mean_replicates(values[:, None], None, n_resamples=resamples, seed=rep)
            for k in keys:
                r = by_item if k.startswith("items:") else by_question
                lo, hi = endpoints(r.point, r.rounds, r.jackknife, confidence=CONFIDENCE, n_groups=r.questions,
                                   method=k.removeprefix("items:"))  # type: ignore[arg-type]
                covered[k][rep, i] = lo[0] <= truth[i] <= hi[0]
                widths[k][rep, i] = hi[0] - lo[0]
    seconds = time.perf_counter() - t0
    return {"questions": questions, "reps": reps, "intervals": reps * len(names), "method": DEFAULT_METHOD,
            "resampled": "questions", "resamples": resamples,
            **_summary(covered[DEFAULT_METHOD], widths[DEFAULT_METHOD], names),
            "by_method": {k: _summary(covered[k], widths[k], names) for k in keys}, "seconds": seconds}


def length_control(reps: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scenario, planted in LC_SCENARIOS.items():
        truth = {m: equal_length_win_rate(theta, sensitivity=planted["sensitivity"]) for m, (theta, _) in LC_MODELS.items()}
        err: dict[str, dict[str, list[float]]] = {k: {m: [] for m in LC_MODELS} for k in ("raw", "length", "difficulty")}
        missing = 0
        t0 = time.perf_counter()
        for rep in range(reps):
            data = difficulty_verdicts(random.Random(7_000_000 + rep), LC_MODELS, LC_QUESTIONS, **planted)
            with_difficulty = difficulty_win_rates({m: ModelVerdicts(*v) for m, v in data.items()})
            length_only = {m: win_rates(v[0], v[1]) for m, v in data.items()}
            if any(with_difficulty[m] is None or length_only[m].length_controlled is None for m in LC_MODELS):
                missing += 1
                continue
            for m in LC_MODELS:
                err["raw"][m].append(length_only[m].raw - truth[m])
                err["length"][m].append(length_only[m].length_controlled - truth[m])  # type: ignore[operator]
                err["difficulty"][m].append(with_difficulty[m].length_controlled - truth[m])  # type: ignore[union-attr]

        def pp(values: list[float]) -> dict[str, float]:
            v = 100 * np.asarray(values)
            return {"mean_error_pp": float(v.mean()), "rmse_pp": float(np.sqrt((v**2).mean()))}

        out[scenario] = {
            **planted, "length_bias": 0.3, "questions": LC_QUESTIONS, "turns": 2, "reps": reps,
            "reps_without_a_rate": missing,
            "models": {m: {"theta": t, "length_ratio": ratio, "truth_equal_length_pct": 100 * truth[m],
                           **{k: pp(err[k][m]) for k in err}} for m, (t, ratio) in LC_MODELS.items()},
            # the two models of the baseline's quality differ only in length: the true gap is 0
            "verbose_minus_concise_pp": {k: float(100 * np.mean(np.subtract(err[k]["verbose"], err[k]["concise"])))
                                         for k in err},
            "seconds": time.perf_counter() - t0,
        }
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=2000, help="repetitions per size, strengths and single scores")
    p.add_argument("--sizes", type=int, nargs="+", default=[40, 80], help="questions per repetition")
    p.add_argument("--rounds", type=int, default=1000, help="bootstrap rounds of the strengths")
    p.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES, help="bootstrap resamples of the scores")
    p.add_argument("--lc-reps", type=int, default=300)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "compare_stats.json")
    args = p.parse_args()
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    figures: dict[str, Any] = {
        "confidence": CONFIDENCE,
        "threads": {v: os.environ[v] for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
        "strengths": {"planted_theta": PLANTED, "question_sd": QUESTION_SD, "model_sd": MODEL_SD,
                      "position_bias": POSITION, "turns": 2, "tie": 0.2, "strong": 0.3,
                      "truth": "strength_limit: the Bradley-Terry limit under the planted judge",
                      "truth_theta": {m: strength_limit(t, sd=float(np.hypot(QUESTION_SD, MODEL_SD)), position=POSITION)
                                      for m, t in PLANTED.items()},
                      "sizes": [strengths(n, args.reps, args.rounds) for n in args.sizes]},
        "single_scores": {"planted_means": MEANS, "turn_shift": [0.0, -0.6], "question_sd": 1.0, "model_sd": 0.7,
                          "noise_sd": 1.2, "unscored": 0.03,
                          "truth": {m: score_truth(v) for m, v in MEANS.items()},
                          "sizes": [single_scores(n, args.reps, args.resamples) for n in args.sizes]},
        "length_control": length_control(args.lc_reps),
    }
    figures["seconds"] = time.perf_counter() - t0
    write_result(args.out, figures, started)

    print(f"{'part':14} {'n':>4} {'reps':>5} {'coverage':>9} {'mean width':>11} {'rounds':>7} {'seconds':>8}")
    for part, key in (("strengths", "bootstrap_rounds"), ("single_scores", "resamples")):
        for s in figures[part]["sizes"]:
            print(f"{part:14} {s['questions']:>4} {s['reps']:>5} {s['coverage']:>9.4f} {s['mean_width']:>11.3f} "
                  f"{s[key]:>7} {s['seconds']:>8.1f}")
    for scenario, s in figures["length_control"].items():
        gap = s["verbose_minus_concise_pp"]
        print(f"{scenario}: verbose - concise, raw {gap['raw']:.1f} pp, LC length only {gap['length']:.1f}, "
              f"LC with difficulty {gap['difficulty']:.1f} (truth 0)")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
