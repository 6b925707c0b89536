"""python -m trainer {train, merge, answer, convert, tiny} ...

`train` takes any setting as `--key value` on top of its own options, so the command line is parsed in
two passes: argparse takes what it knows, and the rest goes to the subcommand as overrides (only the
subcommands that accept overrides; anything unknown elsewhere is an error as usual).

Under torchrun, put `--` before the subcommand: torchrun's own `--run-path` option would otherwise
swallow our `--run` as an abbreviation of it:

    torchrun --standalone --nproc-per-node 2 -m trainer -- train --run runs/NAME ...
"""

from __future__ import annotations

import argparse
import sys

from schemas import UserError
from trainer.commands import answer, convert, merge, tiny, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trainer",
        description=(
            "The LoRA trainer: train an adapter, merge it into its base model, answer an evaluation set, "
            "convert a GGUF file into a model folder, build a tiny test model."
        ),
        allow_abbrev=False,
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="{train,merge,answer,convert,tiny}")
    train.add_parser(subparsers)
    merge.add_parser(subparsers)
    answer.add_parser(subparsers)
    convert.add_parser(subparsers)
    tiny.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The exit status: 0 done, 2 an error the user can fix (one line on stderr, no traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:  # `torchrun ... -m trainer -- train --run ...` may pass the separator on
        argv = argv[1:]
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    try:
        return int(args.func(args))
    except UserError as e:  # the trainer's tree (trainer/errors.py) and the errors it shares with the others
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
