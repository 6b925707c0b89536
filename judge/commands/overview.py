"""`python -m judge overview --run RUN` (`just report --run RUN`): the whole report of a run (judge/reports/overview.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from judge.reports import overview
from judge.reports.overview import write_overview


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "overview",
        help="the whole report of a run (cost, training, scores): report/index.html and summary.json",
        description=overview.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run", type=Path, required=True, help="the run folder, e.g. runs/NAME")
    p.add_argument("--questions", type=Path, action="append", default=[],
                   help="question file(s), for the categories of judgments that do not carry one (repeatable)")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    out = write_overview(args.run, questions=args.questions)
    shown = ", ".join(name for name, present in out.parts.items() if present)
    print(f"report of {args.run} ({shown}): {out.index_html.resolve()}")
    return 0
