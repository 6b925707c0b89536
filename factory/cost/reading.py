"""Reading a run folder for the cost report: the ledger's requests, the kept and rejected
examples, and the resolved settings. Read only: a report never writes into what a stage owns."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from factory.errors import ReportError
from factory.simulator.text import MARKER as SIMULATED_MARKER
from schemas import Example, JsonlError, Rejected, RunFolder, iter_jsonl

TOKEN_KINDS = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens")


_REQUEST_SCHEMA = {
    "stage": pl.String, "model": pl.String, "status": pl.String, "attempts": pl.Int64,
    "input_tokens": pl.Int64, "cached_input_tokens": pl.Int64, "output_tokens": pl.Int64,
    "reasoning_tokens": pl.Int64, "cost_usd": pl.Float64, "latency_s": pl.Float64, "batch": pl.Int64,
    "rate_limited": pl.Int64, "wait_s": pl.Float64,
}


def read_requests(run: Path) -> tuple[pl.DataFrame, bool]:
    """Every ledger request (no response texts), and whether the ledger counts 429s per request.

    Opened read-only: a report may run while a stage is still writing (WAL lets it read a
    consistent snapshot) and must never create a ledger where there was none."""
    path = RunFolder(run).ledger
    if not path.exists():
        return pl.DataFrame(schema=_REQUEST_SCHEMA), False
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise ReportError(f"cannot open {path} ({e}); is it a ledger written by `python -m factory`?") from None
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(requests)")}
        if not columns:
            raise ReportError(f"{path} has no requests table; it is not a ledger written by `python -m factory`")
        # Older ledgers have no per-request 429 counter: the report then says "not recorded".
        has_429 = "rate_limited" in columns
        rate_limited = "rate_limited" if has_429 else "NULL"
        wait = "wait_s" if "wait_s" in columns else "NULL"  # older ledgers did not time the waits
        rows = db.execute(
            "SELECT stage, model, status, attempts, input_tokens, cached_input_tokens, output_tokens, "
            f"reasoning_tokens, cost_usd, latency_s, batch, {rate_limited}, {wait} FROM requests"
        ).fetchall()
    except sqlite3.DatabaseError as e:
        raise ReportError(f"cannot read {path} ({e}); is it a ledger written by `python -m factory`?") from None
    finally:
        db.close()
    return pl.DataFrame(rows, schema=_REQUEST_SCHEMA, orient="row"), has_429


def read_possibly_billed(run: Path) -> dict[str, Any]:
    """Attempts sent and never settled (in flight when a run was killed): the server may have billed
    them. Counted at their worst case (prompt estimate + max_tokens at the model's price)."""
    path = RunFolder(run).ledger
    none = {"attempts": 0, "worst_usd": 0.0}
    if not path.exists():
        return none
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'attempts'").fetchone() is None:
            return none  # a ledger written before attempts were recorded
        n, usd = db.execute("SELECT COUNT(*), COALESCE(SUM(worst_usd), 0) FROM attempts").fetchone()
    finally:
        db.close()
    return {"attempts": int(n), "worst_usd": float(usd)}


@dataclass(frozen=True)
class Outputs:
    kept: int
    reasons: dict[str, int]  # rejection reason -> count, most frequent first
    simulated: bool  # the kept texts carry the simulator's marker


def read_outputs(run: Path) -> Outputs:
    """Kept examples and rejections by reason (a torn last line, from a crash, is skipped)."""
    kept = 0
    simulated = False
    try:
        for ex in iter_jsonl(RunFolder(run).examples, Example):
            kept += 1
            simulated = simulated or SIMULATED_MARKER in ex.output
        reasons = [r.reason for r in iter_jsonl(RunFolder(run).rejected, Rejected)]
    except JsonlError as e:
        raise ReportError(f"{e}; fix or remove that line, then rerun the report") from None
    counts = (
        pl.DataFrame({"reason": reasons}, schema={"reason": pl.String})
        .group_by("reason").len()
        .sort(["len", "reason"], descending=[True, False])
    )
    return Outputs(kept, dict(zip(counts["reason"].to_list(), counts["len"].to_list(), strict=True)), simulated)

