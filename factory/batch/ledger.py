"""What the Batch API path keeps in the run's ledger file, beside the engine's tables.

The ledger's `batches` table holds each batch (id, status, input/output/error file ids); the
`requests` table holds each request's state and result. This module adds what a rerun needs to
find its work again after a kill at ANY point:

  batch_files           every uploaded input file, recorded right after the upload: its stage,
                        model, size, the server's upload time, the batch made from it (NULL until
                        the batch exists) and when its results were collected (NULL until then);
  batch_file_requests   which request keys each file holds (its custom_ids);
  batch_final_failures  the requests whose line failed in a way no resend cures (a 400-class
                        refusal of the request itself): a rerun gives back their recorded
                        failure instead of paying to be refused again, unless told to retry.

So a file recorded without a batch means "killed between upload and create": the rerun looks
for a batch made from that file on the server, or creates it from the same file. A file with a
batch and no `collected_at` is still to be read. Both tables live in the same SQLite file
(a second connection; WAL lets it share the file with the ledger's own).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass

from factory.engine.ledger import Ledger
from schemas import LLMCall

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batch_files (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id        TEXT NOT NULL UNIQUE,
    stage          TEXT NOT NULL,
    model          TEXT NOT NULL,
    request_count  INTEGER NOT NULL,
    bytes          INTEGER NOT NULL,
    uploaded_at    INTEGER NOT NULL,      -- the server's created_at of the file (its clock)
    batch_id       TEXT,                  -- NULL: uploaded, batch not (known to be) created
    collected_at   REAL,                  -- NULL: results not read yet
    recorded_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_file_requests (
    file_id  TEXT NOT NULL,
    key      TEXT NOT NULL,
    PRIMARY KEY (file_id, key)
);
CREATE INDEX IF NOT EXISTS batch_file_requests_key ON batch_file_requests (key);
CREATE TABLE IF NOT EXISTS batch_final_failures (
    key          TEXT PRIMARY KEY,
    batch_id     TEXT NOT NULL,
    error        TEXT NOT NULL,
    recorded_at  REAL NOT NULL
);
"""


@dataclass(frozen=True)
class BatchFile:
    file_id: str
    stage: str
    model: str
    request_count: int
    bytes: int
    uploaded_at: int
    batch_id: str | None
    collected_at: float | None


class BatchLedger:
    """The Batch API's bookkeeping, in `ledger`'s SQLite file."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._db = sqlite3.connect(ledger.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> BatchLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing -------------------------------------------------------------------------

    def add_file(self, file_id: str, *, stage: str, model: str, keys: Iterable[str], nbytes: int, uploaded_at: int) -> None:
        """An uploaded input file and its keys, in one transaction."""
        keys = list(keys)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "INSERT INTO batch_files (file_id, stage, model, request_count, bytes, uploaded_at, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (file_id, stage, model, len(keys), nbytes, uploaded_at, time.time()),
            )
            self._db.executemany("INSERT INTO batch_file_requests (file_id, key) VALUES (?, ?)", ((file_id, k) for k in keys))
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def record_batch(self, batch_id: str, status: str, f: BatchFile, keys: list[str]) -> None:
        """The batch made from file `f`: the batch first, then its link to the file, then its
        requests as pending; each step on its own is enough for a rerun to find the batch."""
        self.ledger.save_batch(batch_id, stage=f.stage, model=f.model, status=status,
                               input_file_id=f.file_id, request_count=len(keys))
        self.link(f.file_id, batch_id)
        self.ledger.mark_pending(
            LLMCall(key=k, stage=f.stage, model=f.model, status="pending", cost_usd=0.0, batch=True, batch_id=batch_id)
            for k in keys
        )

    def link(self, file_id: str, batch_id: str) -> None:
        """The batch made from `file_id`."""
        self._db.execute("UPDATE batch_files SET batch_id = ? WHERE file_id = ?", (batch_id, file_id))

    def mark_collected(self, file_id: str) -> None:
        self._db.execute("UPDATE batch_files SET collected_at = ? WHERE file_id = ?", (time.time(), file_id))

    def mark_final(self, failures: Iterable[tuple[str, str, str]]) -> None:
        """(key, batch_id, error) of lines whose failure is final."""
        now = time.time()
        self._db.executemany(
            "INSERT OR REPLACE INTO batch_final_failures (key, batch_id, error, recorded_at) VALUES (?, ?, ?, ?)",
            ((k, b, e, now) for k, b, e in failures),
        )

    def clear_final(self, keys: Iterable[str]) -> None:
        """Forget that these keys failed for good: they are sent again (`--retry-failed`)."""
        self._db.executemany("DELETE FROM batch_final_failures WHERE key = ?", ((k,) for k in keys))

    # --- reading -------------------------------------------------------------------------

    def final_failures(self) -> dict[str, str]:
        """key -> error of every line recorded as a final failure."""
        return dict(self._db.execute("SELECT key, error FROM batch_final_failures"))

    def open_files(self, stages: Iterable[str] | None = None) -> list[BatchFile]:
        """Files whose results are not collected yet (with or without a batch), oldest first."""
        sql = f"SELECT {_FILE_COLUMNS} FROM batch_files WHERE collected_at IS NULL"
        args: tuple[str, ...] = ()
        if stages is not None:
            wanted = tuple(sorted(set(stages)))
            if not wanted:
                return []
            sql += f" AND stage IN ({', '.join('?' * len(wanted))})"
            args = wanted
        return [BatchFile(*row) for row in self._db.execute(sql + " ORDER BY seq", args)]

    def files(self) -> list[BatchFile]:
        return [BatchFile(*row) for row in self._db.execute(f"SELECT {_FILE_COLUMNS} FROM batch_files ORDER BY seq")]

    def file_of_batch(self, batch_id: str) -> BatchFile | None:
        row = self._db.execute(f"SELECT {_FILE_COLUMNS} FROM batch_files WHERE batch_id = ?", (batch_id,)).fetchone()
        return None if row is None else BatchFile(*row)

    def keys(self, file_id: str) -> list[str]:
        rows = self._db.execute("SELECT key FROM batch_file_requests WHERE file_id = ? ORDER BY rowid", (file_id,))
        return [k for (k,) in rows]


_FILE_COLUMNS = "file_id, stage, model, request_count, bytes, uploaded_at, batch_id, collected_at"
