"""Shared helpers of the Batch API tests: requests, a run of `run_batch` against the simulator,
the simulator's counters, and a client that dies (or loses an answer) at one exact point."""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path

import httpx
import openai

from factory.batch import BatchSettings, batch_client, run_batch
from factory.engine import ChatRequest, ChatResult
from factory.engine.ledger import Ledger
from factory.engine.settings import EngineSettings
from schemas import LLMCall, iter_jsonl

MODEL = "gpt-4o-mini"
ROOT = Path(__file__).resolve().parents[3]
FAST = BatchSettings(poll_initial_s=0.02, poll_max_s=0.05)
CLI_FAST = ["--batch-poll", "0.02", "--batch-poll-max", "0.05", "--no-progress"]


def make_requests(n: int, *, stage: str = "answers", model: str = MODEL, text: str = "Explain topic {i}.",
                  **params) -> list[ChatRequest]:
    return [ChatRequest(stage, model, [{"role": "user", "content": text.format(i=i)}],
                        {"max_tokens": 40, "temperature": 0, **params}) for i in range(n)]


def sim_stats(url: str) -> dict:
    return httpx.get(url.removesuffix("/v1") + "/sim/stats").json()["batches"]


def go(url: str, ledger: Ledger, requests: list[ChatRequest], *, wrap=None, batch: BatchSettings = FAST,
       wait: bool | None = None, progress: io.StringIO | None = None, budget_stages=None,
       **settings) -> tuple[object, list[ChatResult]]:
    results: list[ChatResult] = []
    engine_settings = EngineSettings(base_url=url, **settings)

    async def main():
        async with batch_client(engine_settings, api_key="sk-test") as client:
            return await run_batch(requests, results.append, ledger=ledger, settings=engine_settings,
                                   client=wrap(client) if wrap else client, batch=batch, wait=wait,
                                   progress=progress if progress is not None else io.StringIO(),
                                   budget_stages=budget_stages)

    return asyncio.run(main()), results


def file_keys(url: str, file_id: str) -> list[str]:
    raw = httpx.get(f"{url}/files/{file_id}/content", headers={"authorization": "Bearer sk-test"}).text
    return [json.loads(line)["custom_id"] for line in raw.splitlines()]


def wait_until_finished(url: str, batch_id: str) -> None:
    deadline = time.monotonic() + 10
    while httpx.get(f"{url}/batches/{batch_id}").json()["status"] not in ("completed", "expired", "cancelled", "failed"):
        assert time.monotonic() < deadline, f"batch {batch_id} did not finish"
        time.sleep(0.02)


def assert_each_once(requests: list[ChatRequest], results: list[ChatResult]) -> None:
    keys = [r.request.key for r in results]
    assert sorted(keys) == sorted(r.key for r in requests), "every request exactly once"
    assert all(r.ok and r.content for r in results)


class Killed(BaseException):
    """Stands for kill -9 at one exact point."""


class _Batches:
    def __init__(self, real, mode: str) -> None:
        self._real, self._mode = real, mode

    def __getattr__(self, name):
        return getattr(self._real, name)

    async def create(self, **kwargs):
        if self._mode == "killed before create":
            raise Killed
        batch = await self._real.create(**kwargs)
        if self._mode == "answer lost":
            self._mode = ""
            raise openai.APIConnectionError(request=httpx.Request("POST", "http://sim/v1/batches"))
        return batch


class KillingClient:
    """A client whose batch create dies ("killed before create") or loses its answer ("answer lost")."""

    def __init__(self, real, mode: str) -> None:
        self._real = real
        self.batches = _Batches(real.batches, mode)

    def __getattr__(self, name):
        return getattr(self._real, name)


def write_input(path: Path, texts: list[str], **body) -> Path:
    """Batch API request lines, one per text, custom_id `q{i}`."""
    lines = [{"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": t}], "max_tokens": 20, **body}}
             for i, t in enumerate(texts)]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def latest_responses(run: Path) -> dict[str, LLMCall]:
    """The last record of each key in responses.jsonl (what a reader takes)."""
    return {c.key: c for c in iter_jsonl(run / "responses.jsonl", LLMCall)}


def assert_file_agrees_with_ledger(run: Path, stage: str = "send") -> dict[str, LLMCall]:
    """Every key of the stage has one record in responses.jsonl, in the ledger's final state."""
    records = list(iter_jsonl(run / "responses.jsonl", LLMCall))
    latest = {c.key: c for c in records}
    with Ledger.for_run(run) as ledger:
        rows = {c.key: c for c in ledger.calls(stage=stage)}
    assert len(records) == len(latest), "one record per key once the writer closed"
    assert set(latest) == set(rows)
    for key, row in rows.items():
        assert (latest[key].status, latest[key].error) == (row.status, row.error), key
        if row.status == "done":
            assert latest[key].content == row.content
    return latest
