"""`python -m factory export --run RUN --format FORMAT --out FILE`: a run's kept examples in the format
another trainer reads, as JSONL or Parquet (by the suffix of FILE), with a dataset card (README.md)
beside it.

    messages           {"messages": [{role, content}, ...]}: TRL's SFTTrainer, Unsloth, axolotl, LLaMA-Factory
    alpaca             {instruction, input, output, system, history}: LLaMA-Factory, axolotl
    sharegpt           {"conversations": [{from, value}, ...]}: LLaMA-Factory, Unsloth, axolotl
    prompt-completion  {"prompt": [...], "completion": [...]}: TRL's SFTTrainer, loss on the completion

All kept examples by default; `--curation NAME [--min-score S]` takes those a curation of the run
scored (at or above S), `--ids FILE` those a file names (one id a line). An output that exists is
refused unless `--force`. How rows and the card are made: factory/exporting/.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from factory.exporting import FORMATS, export_run


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export", help="a run's examples for other trainers (TRL, Unsloth, axolotl, LLaMA-Factory): JSONL or Parquet",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run", type=Path, required=True, help="the run folder, e.g. runs/NAME")
    p.add_argument("--format", required=True, metavar="FORMAT", help=f"one of {', '.join(FORMATS)}")
    p.add_argument("--out", type=Path, required=True, help="the file to write: FILE.jsonl or FILE.parquet")
    p.add_argument("--force", action="store_true", help="replace the file (and README.md beside it) if they exist")
    p.add_argument("--curation", metavar="NAME", help="only the examples curation NAME scored (RUN/curation/NAME/)")
    p.add_argument("--min-score", type=float, metavar="S", help="with --curation: an overall score of S or more")
    p.add_argument("--ids", type=Path, metavar="FILE", help="only the examples whose ids FILE lists, one a line")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    print(export_run(args.run, format=args.format, out=args.out, force=args.force, curation=args.curation,
                     min_score=args.min_score, ids=args.ids))
    return 0


__all__ = ["add_parser", "main"]
