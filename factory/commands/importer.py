"""`python -m factory import`: existing instruction data into a run's examples.jsonl.

    python -m factory import --run runs/mine --from alpaca_data.json [--lang ko] [--eval questions.jsonl]

Reads Alpaca JSON (a list of {instruction, input, output}) or JSONL with one example a line under
any of the usual names: {instruction, input, output}, {question, answer}, {prompt, response},
{query, response}, {instruction, completion}, or a single-turn chat {messages: [system?, user,
assistant]}. Each becomes a `schemas.Example` with provenance recipe "import", after the same
filters and near-duplicate check a generation run applies (each can be switched off); what is
dropped goes to rejected.jsonl with the reason. Rerunning the command resumes: records already in
examples.jsonl or rejected.jsonl (by id) are skipped. How records are read and checked:
factory/recipes/imported.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from factory.quality import DedupSettings
from factory.errors import SettingsError
from factory.recipes.imported import RECIPE, ImportSettings, run_import
from factory.engine.settings import load_settings
from schemas import RunFolder


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        RECIPE, help="import existing instruction data (Alpaca JSON, Q&A JSONL) into a run",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--run", required=True, type=Path, help="run folder (runs/NAME)")
    p.add_argument("--from", dest="source", required=True, type=Path, help="the file to import")
    p.add_argument("--format", choices=["auto", "alpaca", "jsonl"], help="input format (default: auto)")
    p.add_argument("--lang", choices=["ko", "en"], help="language of the data; the language filter keeps it")
    p.add_argument("--source-model", help="the model that wrote the data, for provenance")
    p.add_argument("--no-filter", action="store_true", help="keep what the quality filters would drop")
    p.add_argument("--no-dedup", action="store_true", help="keep near-duplicates")
    p.add_argument("--eval", dest="eval_file", type=Path, help="evaluation questions no example may be near")
    p.add_argument("--threshold", type=float, help="near-duplicate threshold (exact Jaccard of shingle sets)")
    p.add_argument("--config", type=Path, help="TOML settings ([import] section)")
    p.set_defaults(func=main)
    return p


def settings_from_args(args: argparse.Namespace) -> ImportSettings:
    overrides: dict[str, Any] = {
        "source": args.source, "format": args.format, "lang": args.lang, "source_model": args.source_model,
        "filter": False if args.no_filter else None, "dedup": False if args.no_dedup else None,
        "eval_file": args.eval_file,
    }
    s = load_settings(args.config, overrides, model=ImportSettings, section="import")
    if args.threshold is not None:
        try:
            dedup = DedupSettings.model_validate({**s.dedup_settings.model_dump(), "threshold": args.threshold})
        except ValidationError as e:
            raise SettingsError(f"--threshold: {e.errors()[0]['msg']}") from None
        s = s.model_copy(update={"dedup_settings": dedup})
    return s


def main(args: argparse.Namespace) -> int:
    s = settings_from_args(args)
    RunFolder(args.run).write_config_section("import", s)
    counts = run_import(args.run, s)
    reasons = {k: v for k, v in counts.items() if k not in {"read", "kept", "skipped"}}
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "none"
    print(f"imported {s.source} into {RunFolder(args.run).examples}: read {counts['read']}, kept {counts['kept']}, "
          f"skipped {counts['skipped']} (already imported), dropped {sum(reasons.values())} ({dropped})")
    return 0
