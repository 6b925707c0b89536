"""The Batch API path: the same requests as the online engine, at half the price, within 24 hours.

    async with batch_client(settings) as client:
        stats = await run_batch(requests, on_result, ledger=ledger, settings=settings, client=client)

run.py reads top to bottom (what is done, attaching, the budget, submitting, polling and
collecting); api.py holds the calls, budget.py the `--max-cost` check, collect.py what a result
line means, ledger.py the bookkeeping that survives a kill, files.py the JSONL in and out,
settings.py the `[batch]` settings and `--batch-*` flags, stats.py the tally and progress line,
and cli.py the `python -m factory batch` command.
"""

from factory.batch.api import batch_client
from factory.errors import BatchBudgetError, BatchFailedError
from factory.batch.ledger import BatchFile, BatchLedger
from factory.batch.run import cancel_open_batches, run_batch
from factory.batch.settings import BatchSettings, add_batch_arguments, batch_settings_from_args
from factory.batch.stats import BatchStats

__all__ = [
    "BatchBudgetError", "BatchFailedError", "BatchFile", "BatchLedger", "BatchSettings", "BatchStats",
    "add_batch_arguments", "batch_client", "batch_settings_from_args", "cancel_open_batches", "run_batch",
]
