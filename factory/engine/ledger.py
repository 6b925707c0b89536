"""The ledger: one SQLite file per run (`runs/NAME/ledger.sqlite`) with every LLM request.

Key = hash of the canonical request (see `ChatRequest.key`), the primary key, so a result is
never recorded twice. A result is written in one transaction (many results per transaction
under load) BEFORE the caller sees it, so a `kill -9` loses at most what was in flight, and a
rerun gives back what is done (with its response text) instead of paying for it again. The
engine writes through `factory.engine.writer.LedgerWriter` (`write`: attempts, results and
settled attempts in one commit).
WAL with synchronous=NORMAL: a commit survives a killed process; only an OS crash or power loss
can drop the last few.

The `batches` table is the Batch API path's: the files and batch ids it submitted, so that a
rerun finds its batches instead of submitting again. Requests sent that way carry batch=1 and
their `batch_id`; they stay `pending` until the batch's results are read.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas import LLMCall, RunFolder, Usage


SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    key                 TEXT PRIMARY KEY,
    stage               TEXT NOT NULL,
    model               TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
    attempts            INTEGER NOT NULL DEFAULT 0,
    rate_limited        INTEGER NOT NULL DEFAULT 0, -- attempts answered 429
    input_tokens        INTEGER NOT NULL DEFAULT 0,
    cached_input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens       INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens    INTEGER NOT NULL DEFAULT 0,
    cost_usd            REAL,               -- NULL: the price is unknown (never 0 for unknown)
    latency_s           REAL,
    wait_s              REAL NOT NULL DEFAULT 0, -- waited for the limiter, the budget, retries
    finish_reason       TEXT,
    content             TEXT,               -- the response text: a rerun re-derives outputs from it
    error               TEXT,
    batch               INTEGER NOT NULL DEFAULT 0,
    batch_id            TEXT,
    created_at          REAL NOT NULL,
    updated_at          REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_stage_status ON requests (stage, status);

CREATE TABLE IF NOT EXISTS batches (
    batch_id        TEXT PRIMARY KEY,
    stage           TEXT NOT NULL,
    model           TEXT NOT NULL,
    status          TEXT NOT NULL,          -- the Batch API's: validating, in_progress, completed...
    input_file_id   TEXT,
    output_file_id  TEXT,
    error_file_id   TEXT,
    request_count   INTEGER NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);

-- Every HTTP attempt, written BEFORE it is sent and deleted when its outcome is recorded (with the
-- result, in the same transaction). A row left by another run was in flight when that run died:
-- the server may have answered and billed it, so it counts at its worst case.
CREATE TABLE IF NOT EXISTS attempts (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL,
    key         TEXT NOT NULL,
    stage       TEXT NOT NULL,
    model       TEXT NOT NULL,
    worst_usd   REAL,                       -- prompt estimate + max_tokens at the model's price; NULL: unknown
    sent_at     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_stage ON attempts (stage);
"""

_COLUMNS = (
    "key, stage, model, status, attempts, rate_limited, input_tokens, cached_input_tokens, output_tokens, "
    "reasoning_tokens, cost_usd, latency_s, wait_s, finish_reason, content, error, batch, batch_id"
)

# Upsert that never touches a row already `done`: a result is recorded once. Attempts and cost
# accumulate across runs (a request that failed yesterday and succeeded today cost both times).
_UPSERT = f"""
INSERT INTO requests ({_COLUMNS}, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET
    status = excluded.status,
    attempts = requests.attempts + excluded.attempts,
    rate_limited = requests.rate_limited + excluded.rate_limited,
    input_tokens = requests.input_tokens + excluded.input_tokens,
    cached_input_tokens = requests.cached_input_tokens + excluded.cached_input_tokens,
    output_tokens = requests.output_tokens + excluded.output_tokens,
    reasoning_tokens = requests.reasoning_tokens + excluded.reasoning_tokens,
    cost_usd = CASE
        WHEN requests.input_tokens + requests.output_tokens = 0 THEN excluded.cost_usd
        WHEN requests.cost_usd IS NULL OR excluded.cost_usd IS NULL THEN NULL
        ELSE requests.cost_usd + excluded.cost_usd END,
    latency_s = excluded.latency_s,
    wait_s = requests.wait_s + excluded.wait_s,
    finish_reason = excluded.finish_reason,
    content = excluded.content,
    error = excluded.error,
    batch = excluded.batch,
    batch_id = excluded.batch_id,
    updated_at = excluded.updated_at
WHERE requests.status != 'done'
"""


_OPEN_ATTEMPT = "INSERT INTO attempts (run_id, key, stage, model, worst_usd, sent_at) VALUES (?, ?, ?, ?, ?, ?)"


@dataclass(frozen=True)
class Limits:
    """Rate limits the server told (x-ratelimit-limit-*), kept for a later dry run of the folder."""

    rpm: int | None
    tpm: int | None


def learned_limits(run_dir: str | Path) -> Limits | None:
    """The limits an earlier run of `run_dir` learned, or None; reads only (never creates a ledger)."""
    path = RunFolder(run_dir).ledger
    if not path.exists():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT value FROM meta WHERE name = 'learned_limits'").fetchone()
    except sqlite3.DatabaseError:
        return None
    finally:
        db.close()
    if row is None:
        return None
    data = json.loads(row[0])
    return Limits(data.get("rpm"), data.get("tpm"))


@dataclass(frozen=True)
class AttemptRow:
    """An HTTP attempt about to be sent (see the `attempts` table)."""

    run_id: str
    key: str
    stage: str
    model: str
    worst_usd: float | None


@dataclass(frozen=True)
class StageModelTotals:
    stage: str
    model: str
    requests: int
    done: int
    failed: int
    usage: Usage
    cost_usd: float | None  # None when any request of the group has an unknown price
    unpriced: int  # requests with usage but no price


class Ledger:
    """One run's ledger. Use as a context manager, or call `close()`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The engine runs on one event-loop thread; check_same_thread=False lets a report or a test
        # read from another thread (sqlite3 serialises access to a connection itself).
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(requests)")}
        if "rate_limited" not in columns:  # a ledger written before the 429 count existed
            self._db.execute("ALTER TABLE requests ADD COLUMN rate_limited INTEGER NOT NULL DEFAULT 0")
        if "wait_s" not in columns:  # ... or before the wait was
            self._db.execute("ALTER TABLE requests ADD COLUMN wait_s REAL NOT NULL DEFAULT 0")
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    @classmethod
    def for_run(cls, run_dir: str | Path) -> Ledger:
        return cls(RunFolder(run_dir).ledger)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing -----------------------------------------------------------------------------

    def record(self, calls: Iterable[LLMCall], settled: Iterable[int] = ()) -> int:
        """Write results in ONE transaction, and close the `settled` attempts (ids from `open_attempt`)
        in it; rows already `done` are left alone. Returns rows written."""
        now = time.time()
        rows = [_row(c, now) for c in calls]
        closing = [(i,) for i in settled]
        before = self._db.total_changes
        if len(rows) == 1 and not closing:
            self._db.execute(_UPSERT, rows[0])  # one statement is its own transaction
            return self._db.total_changes - before
        written = 0
        if rows or closing:
            with self._transaction():
                self._db.executemany(_UPSERT, rows)
                written = self._db.total_changes - before
                self._db.executemany("DELETE FROM attempts WHERE id = ?", closing)
        return written

    def write(
        self, opened: Iterable[AttemptRow] = (), calls: Iterable[LLMCall] = (), settled: Iterable[int] = ()
    ) -> list[int]:
        """In ONE transaction: record the attempts about to be sent (returns their ids, in order),
        write results, and close the `settled` attempts (as `record` does). One commit for all of
        it is what lets many requests a second be recorded before they go."""
        now = time.time()
        opened, rows, closing = list(opened), [_row(c, now) for c in calls], [(i,) for i in settled]
        ids: list[int] = []
        if not (opened or rows or closing):
            return ids
        with self._transaction():
            for a in opened:
                cur = self._db.execute(_OPEN_ATTEMPT, (a.run_id, a.key, a.stage, a.model, a.worst_usd, now))
                ids.append(int(cur.lastrowid or 0))
            self._db.executemany(_UPSERT, rows)
            self._db.executemany("DELETE FROM attempts WHERE id = ?", closing)
        return ids

    def open_attempt(self, run_id: str, key: str, stage: str, model: str, worst_usd: float | None) -> int:
        """Record one attempt about to be sent (committed before it goes); returns its id."""
        return self.write([AttemptRow(run_id, key, stage, model, worst_usd)])[0]

    def save_limits(self, limits: Limits) -> None:
        value = json.dumps({"rpm": limits.rpm, "tpm": limits.tpm})
        self._db.execute("INSERT INTO meta VALUES ('learned_limits', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                         (value,))

    def mark_pending(self, calls: Iterable[LLMCall]) -> None:
        """Record requests as submitted but not answered (the Batch API path)."""
        self.record(c.model_copy(update={"status": "pending", "attempts": 0, "rate_limited": 0}) for c in calls)

    def save_batch(self, batch_id: str, *, stage: str, model: str, status: str, **fields: Any) -> None:
        """Insert or update a Batch API batch (fields: input_file_id, output_file_id, error_file_id,
        request_count)."""
        allowed = {"input_file_id", "output_file_id", "error_file_id", "request_count"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown batch fields {sorted(unknown)}; allowed: {sorted(allowed)}")
        now = time.time()
        cols = ["batch_id", "stage", "model", "status", *fields, "created_at", "updated_at"]
        values = [batch_id, stage, model, status, *fields.values(), now, now]
        updates = ", ".join(f"{c} = excluded.{c}" for c in ["status", *fields, "updated_at"])
        sql = (
            f"INSERT INTO batches ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
            f"ON CONFLICT (batch_id) DO UPDATE SET {updates}"
        )
        with self._transaction():
            self._db.execute(sql, values)

    def batches(self, stage: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM batches" + (" WHERE stage = ?" if stage else "") + " ORDER BY created_at"
        cur = self._db.execute(sql, (stage,) if stage else ())
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    # --- reading -----------------------------------------------------------------------------

    def get(self, key: str) -> LLMCall | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM requests WHERE key = ?", (key,)).fetchone()
        return None if row is None else _call(row)

    def has_done(self) -> bool:
        """Whether any request is done (a rerun), so a fresh run can skip per-request lookups."""
        return self._db.execute("SELECT 1 FROM requests WHERE status = 'done' LIMIT 1").fetchone() is not None

    def get_done(self, key: str) -> LLMCall | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM requests WHERE key = ? AND status = 'done'", (key,)
        ).fetchone()
        return None if row is None else _call(row)

    def calls(self, *, stage: str | None = None, status: str | None = None) -> Iterator[LLMCall]:
        where, args = _where(stage=stage, status=status)
        for row in self._db.execute(f"SELECT {_COLUMNS} FROM requests{where} ORDER BY created_at, key", args):
            yield _call(row)

    def count_by_status(self, stage: str | None = None) -> dict[str, int]:
        where, args = _where(stage=stage)
        rows = self._db.execute(f"SELECT status, COUNT(*) FROM requests{where} GROUP BY status", args)
        counts = {"pending": 0, "done": 0, "failed": 0}
        counts.update(dict(rows.fetchall()))
        return counts

    def totals_by_stage_model(self) -> list[StageModelTotals]:
        rows = self._db.execute(
            """SELECT stage, model, COUNT(*),
                      SUM(status = 'done'), SUM(status = 'failed'),
                      SUM(input_tokens), SUM(cached_input_tokens), SUM(output_tokens), SUM(reasoning_tokens),
                      SUM(cost_usd),
                      SUM(cost_usd IS NULL AND input_tokens + output_tokens > 0)
               FROM requests GROUP BY stage, model ORDER BY stage, model"""
        ).fetchall()
        out = []
        for stage, model, n, done, failed, inp, cached, outp, reasoning, cost, unpriced in rows:
            usage = Usage(
                input_tokens=inp or 0, cached_input_tokens=cached or 0,
                output_tokens=outp or 0, reasoning_tokens=reasoning or 0,
            )
            known_cost = None if unpriced else (cost or 0.0)
            out.append(StageModelTotals(stage, model, n, done or 0, failed or 0, usage, known_cost, unpriced or 0))
        return out

    def spent_usd(self, stage: str | None = None) -> float:
        """USD recorded as paid (known prices only; see `totals_by_stage_model` for unpriced counts)."""
        where, args = _where(stage=stage)
        (total,) = self._db.execute(f"SELECT COALESCE(SUM(cost_usd), 0) FROM requests{where}", args).fetchone()
        return float(total)

    def unsettled(self, stage: str | None = None, *, other_than: str | None = None) -> tuple[int, float]:
        """Attempts sent and never settled (in flight when a run was killed), other than those of the
        running `other_than` run: (count, their worst-case USD, priced ones only). They may have been
        billed; a budget counts them in full."""
        clauses, args = [], []
        if stage is not None:
            clauses.append("stage = ?")
            args.append(stage)
        if other_than is not None:
            clauses.append("run_id != ?")
            args.append(other_than)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        n, usd = self._db.execute(f"SELECT COUNT(*), COALESCE(SUM(worst_usd), 0) FROM attempts{where}", args).fetchone()
        return int(n), float(usd)

    def error_counts(self, stage: str | None = None) -> dict[str, int]:
        """How often each error text occurs among failed requests, most frequent first."""
        where, args = _where(stage=stage, status="failed")
        rows = self._db.execute(
            f"SELECT COALESCE(error, '(no message)'), COUNT(*) AS n FROM requests{where} "
            "GROUP BY 1 ORDER BY n DESC",
            args,
        )
        return dict(rows.fetchall())


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error: a batch of results is all or nothing."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


def _where(**filters: str | None) -> tuple[str, tuple[str, ...]]:
    given = {k: v for k, v in filters.items() if v is not None}
    if not given:
        return "", ()
    return " WHERE " + " AND ".join(f"{k} = ?" for k in given), tuple(given.values())


def _row(c: LLMCall, now: float) -> tuple[Any, ...]:
    u = c.usage
    batch_id = getattr(c, "batch_id", None)  # LLMCall keeps unknown fields: the Batch path sets it
    return (
        c.key, c.stage, c.model, c.status, c.attempts, c.rate_limited,
        u.input_tokens, u.cached_input_tokens, u.output_tokens, u.reasoning_tokens,
        c.cost_usd, c.latency_s, c.wait_s, c.finish_reason, c.content, c.error, int(c.batch), batch_id,
        now, now,
    )


def _call(row: tuple[Any, ...]) -> LLMCall:
    (key, stage, model, status, attempts, rate_limited, inp, cached, out, reasoning,
     cost, latency, wait, finish, content, error, batch, batch_id) = row
    call = LLMCall(
        key=key, stage=stage, model=model, status=status, attempts=attempts, rate_limited=rate_limited,
        usage=Usage(input_tokens=inp, cached_input_tokens=cached, output_tokens=out, reasoning_tokens=reasoning),
        cost_usd=cost, latency_s=latency, wait_s=wait, finish_reason=finish, content=content, error=error, batch=bool(batch),
    )
    if batch_id is not None:
        call.batch_id = batch_id  # type: ignore[attr-defined]
    return call
