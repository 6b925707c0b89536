"""Group commit: the engine's writes to the ledger, many requests' in one transaction.

Every attempt is committed to the ledger before it is sent, and every result before it is
delivered. One commit each would cost a large part of the engine's time per request (SQLite's
commit is the expensive part, with an fsync at each checkpoint, and it would block the event
loop). Here a worker thread commits, one transaction at a time; the writes asked for while one
commits go together into the next. Each task goes on only after the commit that holds its write,
so the guarantee is the same as one commit each: an attempt is on disk before its request leaves
this process, and a result before the caller sees it.
"""

from __future__ import annotations

from collections.abc import Iterable

import anyio
import anyio.lowlevel
import anyio.to_thread

from factory.engine.ledger import AttemptRow, Ledger
from schemas import LLMCall


class _Batch:
    """What goes into one transaction, and its outcome."""

    def __init__(self) -> None:
        self.opened: list[AttemptRow | None] = []  # None: taken back (cancelled before the commit)
        self.calls: list[LLMCall] = []
        self.settled: list[int] = []
        self.ids: list[int] = []
        self.withdrawn: list[int] = []  # indexes in `opened` cancelled while it was written
        self.led = False  # a task has taken on committing this batch
        self.error: BaseException | None = None
        self.committed = anyio.Event()

    def empty(self) -> bool:
        return not (self.calls or self.settled or any(row is not None for row in self.opened))


class LedgerWriter:
    """Writes for one `Engine.run`, grouped into as few transactions as the load allows, on a
    connection of its own, from a worker thread: the event loop goes on while SQLite commits, and
    whatever asks for a write meanwhile goes into the next commit. `close()` when the run ends."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = Ledger(ledger.path)  # SQLite connections are not shared between threads
        self._batch = _Batch()
        self._writing = anyio.Lock()  # one transaction at a time, in order
        self.commits = 0

    async def open_attempt(self, row: AttemptRow) -> int:
        """Record an attempt about to be sent; returns its id once it is committed."""
        batch = self._batch
        batch.opened.append(row)
        index = len(batch.opened) - 1
        try:
            await self._commit(batch)
        except BaseException:
            # Cancelled: the request never leaves. Its row is taken back while the batch gathers,
            # else closed once its commit is done (the thread may be reading the batch now).
            if batch is self._batch:
                batch.opened[index] = None
            elif not batch.committed.is_set():
                batch.withdrawn.append(index)
            elif batch.error is None:
                self.close_later([batch.ids[index]])
            raise
        return batch.ids[index]

    async def record(self, calls: Iterable[LLMCall], settled: Iterable[int] = ()) -> None:
        """Write results and close the attempts they settle; returns once committed."""
        batch = self._batch
        batch.calls.extend(calls)
        batch.settled.extend(settled)
        await self._commit(batch)

    def close_later(self, ids: Iterable[int]) -> None:
        """Attempts known not to be billed: closed with the next commit. Lost in a crash before it,
        they count as possibly billed: the safe side."""
        self._batch.settled.extend(ids)

    def close(self) -> None:
        """Commit what is still pending (attempts closed since the last commit) and close the
        connection. Called once no task of the run is left."""
        batch = self._take()
        self._write(batch)
        batch.committed.set()
        self._ledger.close()

    async def _commit(self, batch: _Batch) -> None:
        if batch.led:
            await batch.committed.wait()
        else:
            batch.led = True
            # Shielded: the tasks that joined this batch wait on it. The lock is held at most
            # for the previous transaction, while this batch gathers the writes asked for meanwhile.
            with anyio.CancelScope(shield=True):
                await anyio.lowlevel.checkpoint()  # the other tasks ready in this turn join first
                async with self._writing:
                    if batch is self._batch:
                        self._take()
                    await anyio.to_thread.run_sync(self._write, batch)
                batch.committed.set()  # here, not in the thread: an Event belongs to the event loop
                if batch.error is None:
                    self.close_later(batch.ids[i] for i in batch.withdrawn)
        if batch.error is not None:
            raise batch.error

    def _take(self) -> _Batch:
        batch, self._batch = self._batch, _Batch()
        return batch

    def _write(self, batch: _Batch) -> None:
        try:
            if not batch.empty():
                opened = [row for row in batch.opened if row is not None]
                ids = iter(self._ledger.write(opened, batch.calls, batch.settled))
                batch.ids = [next(ids) if row is not None else 0 for row in batch.opened]
                self.commits += 1
        except Exception as e:  # a full disk, a locked file: every task of the batch sees it
            batch.error = e
