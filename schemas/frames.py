"""A run's files as polars DataFrames, for the stages' Python APIs (factory.examples,
trainer.answers, judge.judgments ...): the same checks, and each stage's own error class, so a
missing or broken file says what to do in the words of the stage that reads it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from schemas.jsonl import JsonlError, read_jsonl

if TYPE_CHECKING:
    import polars as pl

M = TypeVar("M", bound=BaseModel)


def read_records(path: Path, model: type[M], error: type[Exception], missing: str | None) -> list[M]:
    """The records of a JSONL file. `missing`: the message when there is no file (None: no file
    reads as no records). A broken line raises `error` naming the file and the line."""
    if not path.is_file():
        if missing is None:
            return []
        raise error(missing)
    try:
        return read_jsonl(path, model)
    except JsonlError as e:
        raise error(str(e)) from None


def frame(rows: list[dict[str, Any]], schema: dict[str, str], error: type[Exception]) -> pl.DataFrame:
    """`rows` as a DataFrame with the given column types (polars type names: "String", "Int64" ...)."""
    try:
        import polars as pl
    except ImportError:
        raise error("the DataFrame needs polars: pip install 'instruct-factory[report]'") from None
    return pl.DataFrame(rows, schema={k: getattr(pl, v) for k, v in schema.items()})
