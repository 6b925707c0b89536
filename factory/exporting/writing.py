"""An export's file, JSONL or Parquet by its suffix, written whole: to a temporary file beside it,
then renamed, so a kill leaves no half of a file a trainer would read."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from factory.errors import ExportError
from factory.exporting.formats import Format, Row

SUFFIXES = (".jsonl", ".parquet")
PARQUET_ROWS_PER_GROUP = 10_000  # rows converted to Arrow at a time: memory stays flat for a large run


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    with _replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_rows(path: Path, fmt: Format, rows: Iterable[Row]) -> int:
    """Write the rows; the number written."""
    if path.suffix == ".parquet":
        return _parquet(path, fmt, rows)
    n = 0
    with _replacing(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def _parquet(path: Path, fmt: Format, rows: Iterable[Row]) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError("a .parquet export needs pyarrow: pip install -e '.[export]' (or write --out FILE.jsonl)"
                          ) from None
    schema = fmt.arrow_schema()
    n = 0
    with _replacing(path) as tmp:
        with pq.ParquetWriter(tmp, schema) as writer:
            group: list[Row] = []
            for row in rows:
                group.append(row)
                if len(group) == PARQUET_ROWS_PER_GROUP:
                    writer.write_table(pa.Table.from_pylist(group, schema=schema))
                    n, group = n + len(group), []
            if group or not n:
                writer.write_table(pa.Table.from_pylist(group, schema=schema))
                n += len(group)
    return n


__all__ = ["SUFFIXES", "write_rows", "write_text"]
