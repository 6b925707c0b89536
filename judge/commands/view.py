"""`python -m judge view --run RUN` (`just view --run RUN`): the run's data on one page, RUN/report/data.html.

Tabs for the kept examples, the rejected ones (filter by reason, with the detail), the answers (two
labels side by side per question, with their scores and the judge's rationale) and the curation
scores; full-text search, filters and sorts; each row's provenance (recipe, model, seed ids, request
key, cost). One self-contained file: no server, no network; it opens from disk and in a notebook
(`judge.view(run)`). A file of more rows than --max-rows is shown as a seeded random sample, and the
page says so. How the page is made: judge/reports/data_page/.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from judge.reports.data_page import MAX_ROWS, write_data_page


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "view", help="the run's records on one page: report/data.html (examples, rejections, answers, curation)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run", type=Path, required=True, help="the run folder, e.g. runs/NAME")
    p.add_argument("--max-rows", type=int, default=MAX_ROWS,
                   help=f"rows of one table the page holds; a larger file is sampled (default {MAX_ROWS:,})")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    print(write_data_page(args.run, max_rows=args.max_rows))
    return 0
