"""The generation journal (`runs/NAME/generate/requests.jsonl`): every request a recipe planned,
and which of them have been fully processed.

Why a journal rather than regenerating requests from their index: a prompt may depend on what the
run produced so far (self-instruct shows a few generated tasks next to the seeds, as Self-Instruct
does; the answers stage groups whichever questions survived dedup), and that depends on the order
in which answers arrived. The journal freezes each planned prompt before it is sent, so a rerun
sends exactly the same request again and the engine's ledger finds it: a request already answered
is given back from the ledger, never paid twice.

Lines (JSONL, appended, flushed before the request goes out):
    {"kind": "planned",   "index": 17, "stage": "self-instruct", "messages": [...], "meta": {...}}
    {"kind": "processed", "index": 17, "stage": "self-instruct", "key": "...", "kept": 3}
`processed` is written after the request's examples and rejections reached their files. A planned
request without it is sent again on a rerun (from the ledger when it is done there); its outputs
that already reached a file are recognised by id and not written twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas import JsonlWriter, iter_jsonl



class JournalEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["planned", "processed"]
    index: int = Field(ge=0)
    stage: str
    messages: list[dict[str, str]] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)
    key: str = ""
    kept: int | None = None  # on processed lines: items this request added (journals before it lack it)


class Journal:
    """The planned requests of one run folder. Use as a context manager (it holds the file open)."""

    def __init__(self, path: str | Path, *, write: bool = True) -> None:
        self.path = Path(path)
        self.planned: dict[int, JournalEntry] = {}
        self.processed: set[int] = set()
        self._kept: dict[int, int] = {}
        for entry in iter_jsonl(self.path, JournalEntry):
            if entry.kind == "planned":
                self.planned[entry.index] = entry
            else:
                self.processed.add(entry.index)
                if entry.kept is not None:
                    self._kept[entry.index] = entry.kept
        self.next_index = max(self.planned, default=-1) + 1
        self._writer = JsonlWriter(self.path) if write else None

    def plan(self, stage: str, messages: list[dict[str, str]], meta: dict[str, Any]) -> JournalEntry:
        """Record a new request (before it is sent) and return it with its index."""
        entry = JournalEntry(kind="planned", index=self.next_index, stage=stage, messages=messages, meta=meta)
        self.next_index += 1
        self.planned[entry.index] = entry
        if self._writer is not None:
            self._writer.append(entry)
        return entry

    def mark_processed(self, entry: JournalEntry, key: str, kept: int | None = None) -> None:
        if entry.index in self.processed:
            return
        self.processed.add(entry.index)
        if kept is not None:
            self._kept[entry.index] = kept
        if self._writer is not None:
            self._writer.append(JournalEntry(kind="processed", index=entry.index, stage=entry.stage, key=key,
                                             kept=kept))

    def kept_counts(self, stage: str) -> list[int]:
        """Items each processed request of `stage` added, in plan order (where the journal recorded it)."""
        return [self._kept[i] for i, e in sorted(self.planned.items()) if e.stage == stage and i in self._kept]

    def unprocessed(self, stage: str | None = None) -> list[JournalEntry]:
        return [e for i, e in sorted(self.planned.items())
                if i not in self.processed and (stage is None or e.stage == stage)]

    def entries(self, stage: str | None = None) -> Iterator[JournalEntry]:
        for _, e in sorted(self.planned.items()):
            if stage is None or e.stage == stage:
                yield e

    def count(self, stage: str | None = None, *, processed: bool | None = None) -> int:
        return sum(
            1 for e in self.entries(stage)
            if processed is None or (e.index in self.processed) == processed
        )

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
