"""python -m trainer merge --run runs/NAME [--out DIR]: the base model with the adapter folded in.

The result is a plain transformers model folder (no peft needed to load it) with the tokenizer copied
beside it. The merge itself runs in fp32 on the CPU, W' = W + (alpha / r) * B @ A, so it adds no rounding
of its own; the folder is then saved in the base model's own dtype (bf16 for Gemma) unless --dtype says
otherwise. The merge is trainer/merging.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer.merging import DTYPES, merge_run


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "merge",
        help="merge a run's adapter into its base model (a plain model folder)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--run", type=Path, required=True, help="the run folder, runs/NAME")
    parser.add_argument("--out", type=Path, help="output folder (default: runs/NAME/merged)")
    parser.add_argument("--model", help="base model (default: [train].model of runs/NAME/config.toml)")
    parser.add_argument(
        "--dtype", choices=["auto", *DTYPES], default="auto", help="saved dtype (auto: the base model's)"
    )
    parser.set_defaults(func=main)
    return parser


def main(args: argparse.Namespace) -> int:
    dtype = None if args.dtype == "auto" else DTYPES[args.dtype]
    out = merge_run(args.run, model=args.model, out=args.out, dtype=dtype)
    print(f"wrote the merged model to {out}")
    return 0
