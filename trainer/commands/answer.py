"""`python -m trainer answer`: answers to an evaluation set from a local model, batched (trainer/answering.py).

    python -m trainer answer --run runs/NAME --questions evalsets/ko.jsonl --adapter runs/NAME/train/adapter
    python -m trainer answer --run runs/NAME --questions evalsets/ko.jsonl --model google/gemma-2b-it --label base
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from trainer import answering
from trainer.answering import ANSWER_FIELDS, answer_run, answer_values, resolve_settings


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("answer", help="answer an evaluation set with the base model (+ adapter), batched",
                              description=answering.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="the run folder, e.g. runs/NAME")
    p.add_argument("--questions", type=Path, help="question file (JSONL, schemas.Question or MT-Bench format)")
    p.add_argument("--adapter", type=Path, help="peft adapter folder (e.g. runs/NAME/train/adapter); none: the base alone")
    p.add_argument("--model", help="base model, hub id or folder (default: the adapter's base, else [train].model)")
    p.add_argument("--label", help="model label in answers.jsonl (default: lora with --adapter, base without)")
    p.add_argument("--max-new-tokens", type=int, dest="max_new_tokens", help="per turn (default 1024)")
    p.add_argument("--batch-size", type=int, dest="batch_size", help="prompts per batch (default 8)")
    p.add_argument("--sampling", choices=["per-category", "greedy"], help="temperature per MT-Bench category, or greedy")
    p.add_argument("--seed", type=int, help="sampling seed (default 0)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default auto: cuda if present")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], help="default auto: bf16 on GPU, fp32 on CPU")
    p.add_argument("--config", type=Path, help="TOML file with an [answer] table; flags override it")
    p.set_defaults(func=main)
    return p


def _values(args: argparse.Namespace) -> dict[str, Any]:
    return answer_values(getattr(args, "config", None), {k: getattr(args, k, None) for k in ANSWER_FIELDS})


def main(args: argparse.Namespace) -> int:
    settings = resolve_settings(args.run, _values(args))
    outcome = answer_run(args.run, settings)
    if not outcome.answered:
        print(f"{outcome.label}: all {outcome.questions} questions already answered in {outcome.path}")
        return 0
    print(f"{outcome.label}: answered {outcome.answered} questions in {outcome.seconds:.1f}s "
          f"({outcome.already} already done) -> {outcome.path}")
    return 0
