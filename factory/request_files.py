"""Files of chat requests and their answers, for `send` and `batch`: each input line is a chat
completion body (`{"model": ..., "messages": [...], "max_tokens": ...}`) or a line of the OpenAI
Batch API's input format (`{"custom_id": ..., "body": {...}}`); the answers go to the run's
`responses.jsonl`, one `LLMCall` record per request, in step with the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from factory.engine import ChatRequest, ChatResult
from factory.errors import RequestError, SettingsError
from schemas import JsonlWriter, LLMCall, RunFolder, iter_jsonl, write_jsonl


def read_requests(path: Path, stage: str, default_model: str | None) -> list[ChatRequest]:
    """Every request of `path`; a bad line is an error naming the line."""
    if not path.is_file():
        raise SettingsError(f"--input: no such file: {path}")
    requests = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as e:
                raise RequestError(f"{path}:{lineno}: not JSON ({e})") from None
            body = dict(data.get("body", data)) if isinstance(data, dict) else None
            if not body or not isinstance(body.get("messages"), list):
                raise RequestError(f"{path}:{lineno}: expected a chat body with 'messages' (or a Batch API line with 'body')")
            model = body.pop("model", None) or default_model
            if not model:
                raise RequestError(f"{path}:{lineno}: no model: give one in the line or with --model")
            messages = body.pop("messages")
            meta = {"custom_id": data["custom_id"]} if "custom_id" in data else {"line": lineno}
            try:
                requests.append(ChatRequest(stage, model, messages, body, meta))
            except RequestError as e:
                raise RequestError(f"{path}:{lineno}: {e}") from None
    return requests


@contextmanager
def responses_writer(run: Path) -> Iterator[Callable[[ChatResult], None]]:
    """An `on_result` that keeps `run/responses.jsonl` in step with the ledger: one record per
    request, its final state. A key already written `done` is skipped (a rerun gets the ledger's
    done requests back); a key written `failed` gets a newer record when its state changes (a
    success, or another error), appended at once so a kill loses nothing, and the file is
    rewritten atomically with the latest record of each key when the writer closes. Readers that
    meet a key twice (a run killed before that) take its last record."""
    out_path = RunFolder(run).responses
    records = list(iter_jsonl(out_path, LLMCall))
    latest = {call.key: call for call in records}  # later lines win
    superseded = len(records) - len(latest)
    with JsonlWriter(out_path) as out:

        def on_result(result: ChatResult) -> None:
            nonlocal superseded
            before = latest.get(result.call.key)
            if before is not None and (before.status == "done" or
                                       (before.status, before.error) == (result.call.status, result.call.error)):
                return
            record = result.call.model_copy(update=result.request.meta)
            out.append(record)
            latest[record.key] = record
            superseded += before is not None

        yield on_result
    if superseded:
        write_jsonl(out_path, latest.values())
