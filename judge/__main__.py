"""`python -m judge <command>`: the judge's command line.

Each command module exposes `add_parser(subparsers)`, which registers the command with a
`func=main(args) -> int` default.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from judge.commands import answer, compare, curate, grade, overview, report, view
from schemas import UserError

COMMANDS = [report, grade, answer, overview, compare, view, curate]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m judge", description="Grade answers with an LLM judge and report the scores.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The exit status: 0 done; 1 finished with items not graded (failed requests, the budget, pending
    batches: a rerun continues); 2 an error the user can fix (one line on stderr); 130 interrupted."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as e:  # the judge's tree (judge/errors.py), the factory's, and the shared ones
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
