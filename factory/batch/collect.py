"""Reading a finished batch: what its lines mean for the ledger (an answer at batch prices, a
failure to resubmit, or a final failure), and what a failed batch's errors say."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from factory.batch.files import LineResult
from factory.batch.ledger import BatchFile
from schemas import LLMCall, Usage

log = logging.getLogger(__name__)

# A failed batch with this error code was refused for the organisation's queue of enqueued tokens:
# its requests go again once the other batches have finished.
TOKEN_LIMIT_CODE = "token_limit_exceeded"


@dataclass
class BatchEnd:
    """How a finished batch left the lines it has no result line for."""

    unfinished: LineResult  # the result of every line without one in the output or error file
    refusal: str | None = None  # the API refused the input file: the run stops with this message
    hold_until_idle: bool = False  # refused for the token queue: resubmit once the others finished


def batch_end(b: Any, count: int, stage: str) -> BatchEnd:
    """What batch `b` (of `count` `stage` requests, terminal) means for its lines without a result."""
    if b.status != "failed":
        return BatchEnd(LineResult("", ok=False, retryable=True, error=f"no result line: the batch ended {b.status}"))
    errors = list(b.errors.data) if b.errors and b.errors.data else []
    shown = "; ".join(f"{'line ' + str(e.line) + ': ' if e.line else ''}{e.code}: {e.message}" for e in errors[:5])
    shown = shown or "no reason given"
    if any(e.code == TOKEN_LIMIT_CODE for e in errors):
        log.warning("batch %s refused: the organisation's queue of batch tokens is full; its %d requests "
                    "go again when the other batches have finished", b.id, count)
        return BatchEnd(LineResult("", ok=False, retryable=True, error=f"batch refused: {shown}"), hold_until_idle=True)
    # The input file itself was refused: sending it again would be refused again.
    refusal = (f"the API refused batch {b.id} ({count} {stage} requests): {shown}; "
               "nothing of it was answered or billed, and a rerun submits its requests again")
    return BatchEnd(LineResult("", ok=False, retryable=False, error=f"batch refused: {shown}"), refusal=refusal)


def result_call(key: str, file: BatchFile, batch_id: str, line: LineResult, price: Any, *, attempts: int,
                max_attempts: int, no_batch_price: Callable[[str, Any], None]) -> tuple[LLMCall, bool]:
    """The ledger record of one line (its `attempts`-th in this run), and whether a failure is final.
    `no_batch_price(model, price)` is told when the standard price stands in for an unknown batch price."""
    usage = line.usage or Usage()
    if line.usage is None:
        cost = None if line.ok else 0.0  # an answer without usage was paid, we cannot say how much
    elif price is None:
        cost = None
    else:
        cost = price.cost(usage, batch=True)
        if cost is None:  # no batch price known: the standard price bounds it from above
            no_batch_price(file.model, price)
            cost = price.cost(usage)
    give_up = not line.ok and (not line.retryable or attempts >= max_attempts)
    error = line.error
    if give_up and line.retryable:
        error = f"{error} (gave up after {attempts} batch attempts)"
    call = LLMCall(
        key=key, stage=file.stage, model=file.model, status="done" if line.ok else "failed",
        attempts=1, usage=usage, cost_usd=cost, finish_reason=line.finish_reason, content=line.content,
        error=error, batch=True, batch_id=batch_id,
    )
    return call, give_up
