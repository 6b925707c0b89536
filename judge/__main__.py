"""`python -m judge <command>`: the judge's command line.

Each command module exposes `add_parser(subparsers)`, which registers the command with a
`func=main(args) -> int` default.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from judge.commands import answer, compare, grade, overview, report

COMMANDS = [report, grade, answer, overview, compare]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m judge", description="Grade answers with an LLM judge and report the scores.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
