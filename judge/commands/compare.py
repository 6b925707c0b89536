"""`python -m judge compare` (`just compare`): a leaderboard of several runs against one baseline.

    just compare --runs runs/a runs/b runs/c --judge-model gpt-4o --baseline base [--max-cost USD] [--batch]
                 [--out runs/compare] [--wrong-language loss|flag] [--gpu-hour-usd 0.8]

Every answer label of every run (except the baseline's) is a model, named RUN/LABEL. Each is graded
against the baseline's answers on the same questions, both orders, by a judge that says how much
better (A>>B, A>B, A=B, B>A, B>>A), through the engine (rate limits, retries, `--max-cost`, the
ledger of OUT) or the Batch API. A rerun grades only what is missing; an unreadable verdict is asked
again (`--retries`), then recorded unscored and counted in the report.

Writes OUT/compare.json, OUT/compare.md and OUT/compare.html (one page, no network needed):
Bradley-Terry scores with bootstrap intervals over questions, win/tie/loss, raw and length-
controlled win rates, mean answer length, wrong-language rate, cost and $ per point, the pairwise
matrix and per-category scores.

Exit status: 0 done; 1 some comparisons are not graded (failed requests, budget, pending batches:
rerun), the report shows what is; 2 an input or a setting to fix; 130 interrupted.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


from factory.batch import add_batch_arguments, batch_settings_from_args
from factory.engine import add_engine_arguments, engine_settings_from_args, wants_structured
from judge.errors import structured_hint
from judge.compare.analysis import DEFAULT_ROUNDS, MIN_ROUNDS
from judge.compare.run import CompareSettings, run_compare
from judge.compare.language import HANGUL_THRESHOLD
from judge.grading.settings import GradeError
from schemas import CompareFolder

def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare", help="grade several runs against one baseline and write a leaderboard (BT scores, cost)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, conflict_handler="resolve",
    )
    p.add_argument("--runs", nargs="+", type=Path, required=True, metavar="RUN", help="run folders with eval/answers.jsonl")
    p.add_argument("--baseline", required=True, help="label of the answers every model is compared with, e.g. base")
    p.add_argument("--out", type=Path, default=Path("runs/compare"),
                   help="folder of the comparison: ledger, judgments, reports (default runs/compare)")
    add_engine_arguments(p)
    add_batch_arguments(p)
    p.add_argument("--model", help=argparse.SUPPRESS)  # the engine's; the judge model is --judge-model
    g = p.add_argument_group("grading")
    g.add_argument("--judge-model", required=True, help="the judge model, e.g. gpt-4o")
    g.add_argument("--questions", type=Path, nargs="+", metavar="FILE",
                   help="question files (default: those the runs' answer commands recorded)")
    g.add_argument("--structured", choices=("auto", "yes", "no"), default="auto", help="json_schema output (default auto)")
    g.add_argument("--retries", type=int, default=2, help="more tries for a reply without a readable verdict")
    g.add_argument("--lang", choices=("en", "ko"), help="judge prompt language (default: the question's)")
    g.add_argument("--no-pair-reference", dest="pair_reference", action="store_false",
                   help="do not show reference answers (math, reasoning, coding)")
    g.add_argument("--judge-max-tokens", type=int, default=512, help="max_tokens of a judge reply")
    g.add_argument("--report-only", dest="grade", action="store_false", help="grade nothing; report what is graded")
    s = p.add_argument_group("scores and cost")
    s.add_argument("--wrong-language", choices=("flag", "loss"), default="flag",
                   help="an answer to a Korean question not in Korean: counted only (flag) or a loss (loss)")
    s.add_argument("--hangul-threshold", type=float, default=HANGUL_THRESHOLD,
                   help=f"Hangul share of letters under which an answer is not Korean (default {HANGUL_THRESHOLD})")
    s.add_argument("--bootstrap-rounds", type=int, default=DEFAULT_ROUNDS,
                   help=f"bootstrap rounds (default %(default)s, at least {MIN_ROUNDS})")
    s.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    s.add_argument("--gpu-hour-usd", type=float, help="price of one GPU-hour: adds training compute to the cost")
    s.add_argument("--gpus", type=int, default=1, help="GPUs each training ran on (default 1)")
    p.set_defaults(func=main)
    return p


def settings_from_args(args: argparse.Namespace) -> CompareSettings:
    try:
        return CompareSettings(
            runs=args.runs, baseline=args.baseline, judge_model=args.judge_model, questions=args.questions or [],
            structured=args.structured, retries=args.retries, lang=args.lang, pair_reference=args.pair_reference,
            max_tokens=args.judge_max_tokens, batch=bool(args.batch), wrong_language=args.wrong_language,
            hangul_threshold=args.hangul_threshold, bootstrap_rounds=args.bootstrap_rounds, seed=args.seed,
            gpu_hour_usd=args.gpu_hour_usd, gpus=args.gpus, grade=args.grade)
    except ValueError as e:
        raise GradeError(f"a setting to fix: {e}") from None


def main(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    engine_settings = engine_settings_from_args(argparse.Namespace(**{**vars(args), "model": settings.judge_model}))
    batch = batch_settings_from_args(args) if settings.batch else None
    with structured_hint(wants_structured(settings.structured, settings.judge_model)):
        counts, result, skipped = run_compare(args.out, settings, engine_settings, batch)
    g = result["grading"]
    print(f"judge {settings.judge_model}: {len(result['models']) - 1} models vs {settings.baseline}, "
          f"{g['planned']} comparisons ({g['scored']} scored, {g['unscored']} unscored, {g['missing']} not graded yet)")
    if skipped:
        print(f"not comparable: {len(skipped)} question turns (a model or the baseline has no answer), e.g. {skipped[0]}")
    for r in result["models"]:
        if r.get("score") is not None:
            print(f"  {r['rank']:>2}. {r['name']:<28} {r['score']:5.1f}  [{r['score_low']:.1f}, {r['score_high']:.1f}]")
    if counts.failed or counts.unfinished:
        print(f"{counts.failed + counts.unfinished} comparisons not graded ({counts.stopped_reason or 'requests failed'}); "
              "rerun the same command to continue")
    for note in result["notes"]:
        print(f"note: {note}")
    print(f"report: {CompareFolder(args.out).reports['html']} (and compare.md, compare.json)")
    return 1 if counts.failed or counts.unfinished else 0
