"""`python -m factory batch ...`: a JSONL file of chat requests through the Batch API (half price).

    python -m factory batch --run runs/NAME --input requests.jsonl [--batch-wait no]
    python -m factory batch --run runs/NAME --status      the run's batches, as the API sees them now
    python -m factory batch --run runs/NAME --cancel      cancel the run's open batches

The input is what `python -m factory send` reads (chat bodies, or Batch API request lines), and
answers go to the same `runs/NAME/responses.jsonl`. A rerun of the same command attaches to the
batches already submitted and collects them; it never submits a request twice.
`--status` and `--cancel` also find a batch whose create reply was lost (the process died after
the server made it and before its id was recorded). Requests the API refused (400-class) are
final: a rerun gives back their error without sending them again, unless --retry-failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import anyio

from factory.batch import (
    add_batch_arguments,
    batch_client,
    batch_settings_from_args,
    cancel_open_batches,
    run_batch,
)
from factory.batch.api import BatchCalls
from factory.batch.ledger import BatchLedger
from factory.batch.run import find_lost_batches
from factory.errors import SettingsError
from factory.engine.ledger import Ledger
from factory.request_files import read_requests, responses_writer
from factory.engine.settings import (
    EngineSettings,
    add_engine_arguments,
    engine_settings_from_args,
)
from schemas import RunFolder


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "batch",
        help="send a JSONL file of chat requests through the Batch API (half price, within 24 h, resumable)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run", required=True, type=Path, help="run folder (ledger, config, responses)")
    p.add_argument("--input", type=Path, help="JSONL of chat bodies or Batch API request lines")
    p.add_argument("--stage", default="send", help="stage name recorded in the ledger (default: send)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--status", action="store_true", help="show the run's batches and their state now")
    what.add_argument("--cancel", action="store_true", help="cancel the run's batches that are not collected yet")
    add_engine_arguments(p)
    add_batch_arguments(p, switch=False)
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    settings = engine_settings_from_args(args)
    batch = batch_settings_from_args(args)
    if args.status:
        return anyio.run(_status, args.run, settings)
    if args.cancel:
        return anyio.run(_cancel, args.run, settings)
    if args.input is None:
        raise SettingsError("give --input requests.jsonl (or --status, or --cancel)")
    requests = read_requests(args.input, args.stage, settings.model)
    folder = RunFolder(args.run)
    folder.write_config_section(args.stage, settings)
    folder.write_config_section("batch", batch)
    with Ledger.for_run(args.run) as ledger, responses_writer(args.run) as on_result:

        async def go() -> Any:
            async with batch_client(settings) as client:
                return await run_batch(requests, on_result, ledger=ledger, settings=settings, client=client, batch=batch)

        stats = anyio.run(go)
    print(stats.summary(), file=sys.stderr)
    if stats.pending:
        print(f"{stats.pending} requests are in batches on the server: rerun the same command to collect them",
              file=sys.stderr)
    return 1 if stats.failed or stats.final_earlier or stats.stopped_reason else 0


async def _status(run: Path, settings: EngineSettings) -> int:
    if not RunFolder(run).ledger.exists():
        raise SettingsError(f"no ledger in {run}: nothing was submitted there")
    with Ledger.for_run(run) as ledger, BatchLedger(ledger) as books:
        async with batch_client(settings) as client:
            # A batch whose create reply was lost is on the server, not yet in the ledger: look first.
            lost = set(await find_lost_batches(books, BatchCalls(client, settings)))
            rows = ledger.batches()
            open_ids = {f.batch_id for f in books.open_files()}
            waiting = [f for f in books.open_files() if f.batch_id is None]
            for row in rows:
                status, counts = row["status"], ""
                if row["batch_id"] in open_ids:
                    b = await client.batches.retrieve(row["batch_id"])
                    status = b.status
                    if b.request_counts:
                        c = b.request_counts
                        counts = f" {c.completed}/{c.total} done, {c.failed} failed"
                collected = "collected" if row["batch_id"] not in open_ids else "to collect"
                found = "; found on the server, its create reply was lost" if row["batch_id"] in lost else ""
                print(f"{row['batch_id']}  {row['stage']}  {row['model']}  {row['request_count']} requests  "
                      f"{status}{counts}  ({collected}{found})")
    for f in waiting:
        print(f"{f.file_id}  {f.stage}  {f.model}  {f.request_count} requests  uploaded, no batch on the server "
              "(a rerun submits it)")
    if not rows and not waiting:
        print(f"no batches in {run}")
    return 0


async def _cancel(run: Path, settings: EngineSettings) -> int:
    with Ledger.for_run(run) as ledger:
        async with batch_client(settings) as client:
            cancelled = await cancel_open_batches(ledger, client, settings=settings)
    print(f"cancelled {len(cancelled)} batches" + (": " + ", ".join(cancelled) if cancelled else ""), file=sys.stderr)
    print("a rerun of the same command collects what they finished and resubmits the rest", file=sys.stderr)
    return 0


__all__ = ["add_parser", "main"]
