"""`python -m factory send --run runs/NAME --input requests.jsonl`: send a file of chat requests.

Each input line is a chat completion body (`{"model": ..., "messages": [...], "max_tokens": ...}`)
or a line of the OpenAI Batch API's input format (`{"custom_id": ..., "body": {...}}`). Answers
go to `runs/NAME/responses.jsonl`, one `LLMCall` record per request (with its `custom_id`), in
the order they finish. A rerun skips what the ledger has done and what the file already holds;
a later success replaces a failure of the same key.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import anyio

from factory.engine import Engine
from factory.engine.ledger import Ledger
from factory.engine.settings import (
    add_engine_arguments,
    engine_settings_from_args,

)
from factory.request_files import read_requests, responses_writer
from schemas import RunFolder



def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "send",
        help="send a JSONL file of chat requests through the engine (rate-limited, budgeted, resumable)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run", required=True, type=Path, help="run folder (ledger, config, responses)")
    p.add_argument("--input", required=True, type=Path, help="JSONL of chat bodies or Batch API request lines")
    p.add_argument("--stage", default="send", help="stage name recorded in the ledger (default: send)")
    add_engine_arguments(p)
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    settings = engine_settings_from_args(args)
    requests = read_requests(args.input, args.stage, settings.model)
    RunFolder(args.run).write_config_section(args.stage, settings)
    with Ledger.for_run(args.run) as ledger, responses_writer(args.run) as on_result:
        engine = Engine(settings, ledger)
        stats = anyio.run(engine.run, requests, on_result, len(requests))
    print(stats.summary(), file=sys.stderr)
    if stats.stopped_reason == "interrupted":
        return 130
    return 1 if stats.failed or stats.stopped_reason else 0
