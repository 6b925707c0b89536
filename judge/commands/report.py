"""`python -m judge report --run RUN`: the scores part of a run's report.

Reads `RUN/eval/judgments.jsonl` and `RUN/eval/answers.jsonl`; writes `RUN/report/scores.md`,
PNG charts beside it, and the "scores" key of `RUN/report/summary.json` (other keys, written by
other stages such as the cost report, are kept).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from judge.reports import stats
from judge.reports.scores import write_report
from schemas import SettingsError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("report", help="scores report of a run: report/scores.md, charts, summary.json",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="the run folder, e.g. runs/NAME")
    p.add_argument("--questions", type=Path, action="append", default=[],
                   help="question file(s) for the categories of judgments that do not carry one (repeatable)")
    p.add_argument("--resamples", type=int, default=stats.DEFAULT_RESAMPLES, help="bootstrap resamples (default %(default)s)")
    p.add_argument("--confidence", type=float, default=stats.DEFAULT_CONFIDENCE, help="interval level (default %(default)s)")
    p.add_argument("--seed", type=int, default=stats.DEFAULT_SEED, help="bootstrap seed (default %(default)s)")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    if args.resamples < 1:
        raise SettingsError("--resamples must be at least 1")
    if not 0 < args.confidence < 1:
        raise SettingsError("--confidence must be between 0 and 1, e.g. 0.95")
    out = write_report(args.run, questions=args.questions, n_resamples=args.resamples,
                       confidence=args.confidence, seed=args.seed)
    print(f"wrote {out.scores_md}, {out.summary_json}" + "".join(f", {c}" for c in out.charts))
    return 0
