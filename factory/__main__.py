"""`python -m factory <command> ...`: the data factory's command line.

Each command lives in its own module, which exposes `add_parser(subparsers)`: it registers its
sub-command with `set_defaults(func=main)`, where `main(args) -> int` is the exit status. To add a
command, add its module to COMMANDS.

Exit status: 0 done; 1 finished with failed requests or stopped by the budget; 2 an error the
user can fix (a setting, a bad key, an unknown model: one line on stderr, no traceback);
130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from factory.errors import SecretFilter, UserError

COMMANDS: tuple[str, ...] = (
    "factory.commands.generate",  # generate: instruction data with a recipe
    "factory.commands.importer",  # import: existing data sets into the run's format
    "factory.commands.batch",  # batch: the Batch API path
    "factory.commands.send",  # send: a JSONL file of chat requests through the engine
    "factory.commands.simulate",  # simulate: the local OpenAI-compatible simulator
    "factory.commands.serve_local",  # serve-local: a real model on a local OpenAI-compatible server
    "factory.commands.report",  # report: what a run cost and kept (report/cost.md)
    "factory.commands.export",  # export: the kept examples for other trainers (JSONL, Parquet, a dataset card)
)


class ShortErrorParser(argparse.ArgumentParser):
    """A mistake on the command line is one line and where to read more, not the whole usage (that
    of `generate` is 40 lines, and the line that matters would come last). The sub-commands'
    parsers are of this class too (argparse makes them of the parent's class)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n(all options: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = ShortErrorParser(
        prog="python -m factory",
        description="instruct-factory: generate instruction data with an LLM API (rate-limited, cost-tracked, resumable).",
    )
    parser.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="log detail on stderr (DEBUG: every request and retry decision)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def _configure_logging(level: str) -> None:
    root = logging.getLogger()
    root.setLevel(level)
    if any(getattr(h, "_factory_cli", False) for h in root.handlers):
        return  # main() called again in the same process (tests)
    handler = logging.StreamHandler(sys.stderr)
    handler._factory_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretFilter())  # a last line of defence: no key in any log line
    root.addHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.log_level)
    try:
        return int(args.func(args))
    except UserError as e:  # the factory's tree (factory/errors.py) and the errors it shares with the others
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
