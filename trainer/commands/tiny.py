"""`python -m trainer tiny --out DIR`: a tiny random Gemma-architecture model and tokenizer (trainer/tiny.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer import tiny
from trainer.tiny import DEFAULT_SHAPE, build_tiny
from trainer.errors import SettingsError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `tiny`: build the tiny model folder."""
    parser = subparsers.add_parser(
        "tiny",
        help="build a tiny random Gemma-architecture model and tokenizer (offline; for tests and demos)",
        description=tiny.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    parser.add_argument("--layers", type=int, default=DEFAULT_SHAPE["num_hidden_layers"], help="decoder layers")
    parser.add_argument("--hidden", type=int, default=DEFAULT_SHAPE["hidden_size"], help="hidden size")
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace) -> int:
    if args.layers < 1 or args.hidden < 1:
        raise SettingsError("--layers and --hidden must be positive integers")
    out = args.out
    if out.exists() and not out.is_dir():
        raise SettingsError(f"--out {out} is a file; give a folder")
    build_tiny(out, seed=args.seed, num_hidden_layers=args.layers, hidden_size=args.hidden)
    print(f"wrote a tiny Gemma model and tokenizer to {out}")
    return 0
