"""JSONL reading and appending that survive a crash mid-write.

A process killed while appending can leave a last line without its newline. Readers drop such a
torn tail and say so; writers cut it off before appending, so it never fuses with the next record.
A bad line anywhere else is real corruption and raises an error that names the file and line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from schemas.errors import JsonlError

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


@dataclass
class ReadReport:
    path: Path
    records: int = 0
    torn_tail: bool = False
    torn_bytes: int = 0
    notes: list[str] = field(default_factory=list)


def _complete_size(path: Path) -> int:
    """Size of the file up to and including its last newline."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb") as f:
        step = 1 << 16
        pos = size
        while pos > 0:
            start = max(0, pos - step)
            f.seek(start)
            chunk = f.read(pos - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                return start + i + 1
            pos = start
    return 0


def iter_jsonl(path: str | Path, model: type[M], report: ReadReport | None = None) -> Iterator[M]:
    """Yield the records of `path`; a torn last line is dropped and logged (and noted in `report`)."""
    path = Path(path)
    report = report if report is not None else ReadReport(path)
    if not path.exists():
        return
    complete = _complete_size(path)
    torn = path.stat().st_size - complete
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                break  # the torn tail, handled below
            if not raw.strip():
                continue
            try:
                rec = model.model_validate_json(raw)
            except ValidationError as e:
                raise JsonlError(f"{path}:{lineno}: not a valid {model.__name__}: {_first_error(e)}") from e
            report.records += 1
            yield rec
    if torn:
        report.torn_tail, report.torn_bytes = True, torn
        msg = f"{path}: dropped a torn last line ({torn} bytes without a newline; a crash mid-write)"
        report.notes.append(msg)
        log.warning(msg)


def read_jsonl(path: str | Path, model: type[M], report: ReadReport | None = None) -> list[M]:
    return list(iter_jsonl(path, model, report))


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    return f"{loc}: {err['msg']}" if loc else err["msg"]


class JsonlWriter:
    """Appends records, one `write` per batch of lines; cuts a torn tail off first.

    `fsync=True` makes each `append` durable against power loss, not just a killed process.
    """

    def __init__(self, path: str | Path, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            complete = _complete_size(self.path)
            torn = self.path.stat().st_size - complete
            if torn:
                log.warning("%s: cut a torn last line (%d bytes) before appending", self.path, torn)
                os.truncate(self.path, complete)
        self._f = self.path.open("ab")

    def append(self, records: BaseModel | Iterable[BaseModel]) -> None:
        if isinstance(records, BaseModel):
            records = [records]
        data = b"".join(r.model_dump_json(exclude_none=False).encode() + b"\n" for r in records)
        if not data:
            return
        self._f.write(data)
        self._f.flush()
        if self.fsync:
            os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_jsonl(path: str | Path, records: Iterable[BaseModel]) -> None:
    """Write a whole file atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        for r in records:
            f.write(r.model_dump_json().encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
