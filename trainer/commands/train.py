"""`python -m trainer train --run runs/NAME [--config FILE] [--key value ...]`: the command line of
the training loop (trainer/loop.py, through trainer/training.py). Settings and data are checked
before any model loads."""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer.training import is_main_process, train_run


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="train a LoRA adapter on runs/NAME/examples.jsonl (resumes when rerun)",
        description="Train a LoRA adapter with the hand-written loop. Rerun the same command to resume.",
        epilog=(
            "Any setting of the [train] table can be overridden: --lr 2e-4 --lora.r 8 --grad-accum 4 "
            "--compile true --lora.target_modules q_proj,v_proj. On several GPUs: "
            "torchrun --standalone --nproc-per-node G -m trainer -- train --run runs/NAME ..."
        ),
        allow_abbrev=False,
    )
    parser.add_argument("--run", type=Path, required=True, help="the run folder, runs/NAME")
    parser.add_argument(
        "--config", type=Path, help="a TOML file with a [train] table (e.g. configs/gemma-2b-it-lora.toml)"
    )
    parser.add_argument("--data", type=Path, help="examples JSONL (default: runs/NAME/examples.jsonl)")
    parser.add_argument(
        "--max-steps-this-run", type=int, metavar="K",
        help="stop with a checkpoint after K optimizer steps; rerun to continue",
    )
    parser.set_defaults(func=main, takes_overrides=True)
    return parser


def main(args: argparse.Namespace) -> int:
    from trainer.settings import load_settings, parse_overrides

    overrides = parse_overrides(list(getattr(args, "overrides", []) or []))
    if args.data is not None:
        overrides["data"] = str(args.data)
    settings = load_settings(args.config, overrides)
    result = train_run(args.run, settings, max_steps_this_run=args.max_steps_this_run)
    if is_main_process():
        if result.finished:
            print(f"done: {result.step} steps; adapter in {result.adapter_dir}")
        else:
            print(f"stopped at step {result.step}/{result.total_steps}; rerun the same command to continue")
    return 0
