"""The ledger: one row per request key, a result recorded once, queries the reports need."""

from __future__ import annotations

import sqlite3

import pytest

from factory.engine.ledger import Ledger
from schemas import LLMCall, Usage


def call(key: str, status: str = "done", *, stage: str = "answers", model: str = "gpt-4o", attempts: int = 1,
         cost: float | None = 0.01, content: str | None = "text", error: str | None = None, tokens: int = 10) -> LLMCall:
    return LLMCall(key=key, stage=stage, model=model, status=status, attempts=attempts,
                   usage=Usage(input_tokens=tokens, cached_input_tokens=tokens // 2, output_tokens=tokens * 2, reasoning_tokens=1),
                   cost_usd=cost, latency_s=0.5, finish_reason="stop", content=content, error=error)


def test_a_result_round_trips_with_every_field(ledger):
    original = call("k1")
    assert ledger.record([original]) == 1
    assert ledger.get("k1") == original
    assert ledger.get_done("k1") == original
    assert ledger.get("missing") is None


def test_a_done_result_is_never_overwritten(ledger):
    ledger.record([call("k1", content="first")])
    assert ledger.record([call("k1", content="second")]) == 0
    assert ledger.get("k1").content == "first" and ledger.get("k1").attempts == 1


def test_a_failed_request_is_replaced_by_its_later_success_and_attempts_add_up(ledger):
    ledger.record([call("k1", "failed", attempts=3, cost=0.0, content=None, error="HTTP 500", tokens=0)])
    assert ledger.get_done("k1") is None
    ledger.record([call("k1", "done", attempts=1, cost=0.02)])
    row = ledger.get("k1")
    assert row.status == "done" and row.attempts == 4 and row.error is None and row.cost_usd == pytest.approx(0.02)


def test_billed_failures_and_their_later_success_add_their_costs(ledger):
    ledger.record([call("k1", "failed", cost=0.01)])
    ledger.record([call("k1", "done", cost=0.02)])
    row = ledger.get("k1")
    assert row.cost_usd == pytest.approx(0.03) and row.usage.input_tokens == 20


def test_an_unknown_cost_stays_unknown(ledger):
    ledger.record([call("k1", "failed", cost=None)])
    ledger.record([call("k1", "done", cost=0.02)])
    assert ledger.get("k1").cost_usd is None


def test_a_batch_is_one_transaction(ledger):
    """A bad row rolls back the whole batch: results are recorded all or nothing."""
    good = call("k1")
    bad = call("k2").model_copy(update={"status": "exploded"})  # violates the CHECK constraint
    with pytest.raises(sqlite3.IntegrityError):
        ledger.record([good, bad])
    assert ledger.get("k1") is None


def test_queries_for_the_reports(ledger):
    ledger.record([
        call("a", stage="questions", model="gpt-4o-mini", cost=0.001),
        call("b", stage="questions", model="gpt-4o-mini", cost=0.002),
        call("c", "failed", stage="answers", cost=0.0, error="HTTP 500: overloaded", tokens=0),
        call("d", "failed", stage="answers", cost=0.0, error="HTTP 500: overloaded", tokens=0),
        call("e", "failed", stage="answers", cost=0.0, error="timeout", tokens=0),
        call("f", stage="answers", model="my-finetune", cost=None),
    ])
    assert ledger.count_by_status() == {"pending": 0, "done": 3, "failed": 3}
    assert ledger.count_by_status("questions") == {"pending": 0, "done": 2, "failed": 0}
    assert ledger.spent_usd("questions") == pytest.approx(0.003)
    assert ledger.error_counts() == {"HTTP 500: overloaded": 2, "timeout": 1}
    totals = {(t.stage, t.model): t for t in ledger.totals_by_stage_model()}
    q = totals[("questions", "gpt-4o-mini")]
    assert (q.requests, q.done, q.failed, q.cost_usd) == (2, 2, 0, pytest.approx(0.003))
    assert q.usage == Usage(input_tokens=20, cached_input_tokens=10, output_tokens=40, reasoning_tokens=2)
    assert totals[("answers", "my-finetune")].cost_usd is None and totals[("answers", "my-finetune")].unpriced == 1
    assert [c.key for c in ledger.calls(stage="answers", status="failed")] == ["c", "d", "e"]


def test_pending_requests_and_batches_for_the_batch_api_path(ledger):
    ledger.mark_pending([call("k1", content=None)])
    assert ledger.count_by_status()["pending"] == 1 and ledger.get_done("k1") is None
    ledger.save_batch("batch_1", stage="answers", model="gpt-4o", status="validating", input_file_id="file_in", request_count=1)
    ledger.save_batch("batch_1", stage="answers", model="gpt-4o", status="completed", output_file_id="file_out")
    [batch] = ledger.batches("answers")
    assert (batch["status"], batch["input_file_id"], batch["output_file_id"], batch["request_count"]) == (
        "completed", "file_in", "file_out", 1)
    with pytest.raises(ValueError, match="unknown batch fields"):
        ledger.save_batch("batch_2", stage="s", model="m", status="x", colour="red")


def test_the_file_is_wal_and_survives_reopening(run_dir):
    with Ledger.for_run(run_dir) as first:
        first.record([call("k1")])
    with Ledger.for_run(run_dir) as second:
        assert second.get_done("k1") is not None
        assert second._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_ledger_written_before_the_429_count_gains_the_column(tmp_path):
    import sqlite3

    from factory.engine.ledger import Ledger

    path = tmp_path / "ledger.sqlite"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE requests (key TEXT PRIMARY KEY, stage TEXT NOT NULL, model TEXT NOT NULL, status TEXT NOT NULL,"
        " attempts INTEGER NOT NULL DEFAULT 0, input_tokens INTEGER NOT NULL DEFAULT 0,"
        " cached_input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,"
        " reasoning_tokens INTEGER NOT NULL DEFAULT 0, cost_usd REAL, latency_s REAL, finish_reason TEXT,"
        " content TEXT, error TEXT, batch INTEGER NOT NULL DEFAULT 0, batch_id TEXT,"
        " created_at REAL NOT NULL, updated_at REAL NOT NULL)"
    )
    old.execute("INSERT INTO requests (key, stage, model, status, attempts, created_at, updated_at)"
                " VALUES ('k', 's', 'm', 'done', 2, 0, 0)")
    old.commit()
    old.close()
    with Ledger(path) as ledger:
        (call,) = ledger.calls()
    assert call.key == "k" and call.attempts == 2 and call.rate_limited == 0
