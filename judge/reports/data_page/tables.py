"""The page's tables, columnar and compact: one JSON array per column, and the columns that repeat a
few values (language, recipe, model, reason, request key, system text, a cost as text) as indexes
into a list of their distinct values. A table of 100k examples then spells "self-instruct" once,
not 100k times, and the page's script reads a column as one array.

A JSONL file larger than the page holds (`max_rows`) is sampled, not truncated: the lines to read
are drawn at random (seeded) among the file's complete lines, and only those are parsed, so a run
of a million examples costs the page a count of its lines and a hundred thousand parses.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from judge.errors import ViewerError

M = TypeVar("M", bound=BaseModel)
SAMPLE_SEED = 0


class Table:
    """Columns under construction: `add(row)` appends one row; dictionary columns are encoded."""

    def __init__(self, columns: list[str], coded: tuple[str, ...] = ()) -> None:
        self.cols: dict[str, list[Any]] = {c: [] for c in columns}
        self.coded = {c: {} for c in coded}  # column -> value -> its index
        self.n = 0

    def add(self, row: dict[str, Any]) -> None:
        for name, values in self.cols.items():
            value = row.get(name)
            codes = self.coded.get(name)
            if codes is not None and value is not None:
                value = codes.setdefault(value, len(codes))
            values.append(value)
        self.n += 1

    def as_data(self, **extra: Any) -> dict[str, Any]:
        return {"n": self.n, "cols": self.cols, "dicts": {c: list(codes) for c, codes in self.coded.items()}, **extra}


@dataclass
class Lines:
    """What sampling a JSONL file found: the records read, the file's complete lines, and whether the
    records are a sample of them (`total` > the page's `max_rows`)."""

    records: list[Any] = field(default_factory=list)
    total: int = 0
    sampled: bool = False

    def info(self) -> dict[str, Any]:
        return {"total": self.total, "on_page": len(self.records), "sampled": self.sampled,
                "seed": SAMPLE_SEED if self.sampled else None}


def _complete_lines(path: Path) -> Iterator[bytes]:
    """The lines that end in a newline (a torn last line, from a crash, is not a record yet)."""
    with path.open("rb") as f:
        pending = b""
        while chunk := f.read(1 << 20):
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            yield from lines


def read_lines(path: Path, model: type[M], max_rows: int) -> Lines:
    """The records of `path`: all of them, or a seeded random sample of `max_rows` when it holds more."""
    out = Lines()
    if not path.is_file():
        return out
    out.total = sum(1 for _ in _complete_lines(path))
    chosen: set[int] | None = None
    if out.total > max_rows:
        chosen = set(random.Random(SAMPLE_SEED).sample(range(out.total), max_rows))
        out.sampled = True
    for number, line in enumerate(_complete_lines(path), start=1):
        if chosen is not None and number - 1 not in chosen:
            continue
        if not line.strip():
            continue
        try:
            out.records.append(model.model_validate_json(line))
        except ValidationError as e:
            where = e.errors()[0]
            raise ViewerError(f"{path}:{number}: not a {model.__name__} ({'.'.join(map(str, where['loc']))}: "
                              f"{where['msg']}); fix or remove that line, then view again") from None
    return out


__all__ = ["SAMPLE_SEED", "Lines", "Table", "read_lines"]
