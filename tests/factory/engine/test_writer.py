"""Group commit (factory/engine/writer.py): every attempt is on disk before its request reaches the
server, results before the caller sees them, and many requests share one commit."""

from __future__ import annotations

import sqlite3

import anyio
import anyio.lowlevel
from engine_fakes import FakeAPI, request, run

from factory.engine.ledger import AttemptRow, Ledger
from factory.engine.writer import LedgerWriter


def _open_keys(ledger: Ledger) -> set[str]:
    """The attempts table as another process sees it (its own connection: only what is committed)."""
    db = sqlite3.connect(ledger.path)
    try:
        return {key for (key,) in db.execute("SELECT key FROM attempts")}
    finally:
        db.close()


def test_each_attempt_is_committed_before_its_request_reaches_the_server(make_engine, ledger):
    requests = [request(i) for i in range(60)]
    key_of = {r.messages[-1]["content"]: r.key for r in requests}
    seen_on_disk: list[bool] = []

    def respond(api: FakeAPI, call):
        seen_on_disk.append(key_of[call.prompt] in _open_keys(ledger))
        return api.ok(call)

    engine = make_engine(FakeAPI(respond), max_concurrency=16)
    stats, _ = run(engine, requests)

    assert stats.done == 60 and len(seen_on_disk) == 60 and all(seen_on_disk)
    assert _open_keys(ledger) == set()  # each answer closed its attempt when it was recorded
    # Many requests in flight at once share commits: fewer than one per attempt and result.
    assert engine._run is not None and engine._run.writer.commits < 60


def test_a_429_closes_its_attempt_and_the_retry_opens_a_new_one(make_engine, ledger):
    def respond(api: FakeAPI, call):
        if call.attempt == 0:
            return api.error(429, "Rate limit reached", headers={"retry-after-ms": "10"})
        return api.ok(call)

    stats, _ = run(make_engine(FakeAPI(respond)), [request(i) for i in range(5)])
    assert stats.done == 5 and stats.rate_limited == 5
    assert ledger.unsettled() == (0, 0.0)  # 429s are not billed: nothing left counting against a budget


def _row(key: str) -> AttemptRow:
    return AttemptRow("run-1", key, "test", "gpt-4o-mini", 0.001)


def test_an_attempt_cancelled_before_it_was_sent_is_not_left_open(ledger):
    async def main() -> int:
        writer = LedgerWriter(ledger)
        ids: list[int] = []

        async def opener() -> None:
            ids.append(await writer.open_attempt(_row("sent")))

        async with anyio.create_task_group() as tg:
            tg.start_soon(opener)
            await anyio.lowlevel.checkpoint()  # the opener now gathers a batch, which this joins
            with anyio.CancelScope() as scope:
                scope.cancel()
                await writer.open_attempt(_row("cancelled"))
        writer.close()
        return ids[0]

    sent_id = anyio.run(main)
    assert sent_id > 0
    assert _open_keys(ledger) == {"sent"}


def test_a_write_that_fails_reaches_every_task_of_its_batch(ledger):
    class Broken(Exception):
        pass

    async def main() -> list[BaseException]:
        writer = LedgerWriter(ledger)

        def fail(*args: object) -> list[int]:
            raise Broken("disk full")

        writer._ledger.write = fail  # type: ignore[method-assign]
        errors: list[BaseException] = []

        async def opener(key: str) -> None:
            try:
                await writer.open_attempt(_row(key))
            except Broken as e:
                errors.append(e)

        async with anyio.create_task_group() as tg:
            for key in ("a", "b", "c"):
                tg.start_soon(opener, key)
        return errors

    assert len(anyio.run(main)) == 3
