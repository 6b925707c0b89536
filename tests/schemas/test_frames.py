"""A run's file as a DataFrame: a missing file says what to do, or reads as empty where that is
what it means; a broken line names the file and the line, in the reading stage's error class."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas import Rejected
from schemas.frames import frame, read_records


class StageError(RuntimeError):
    pass


def test_a_missing_file_raises_the_given_message_or_reads_as_empty(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="generate them first"):
        read_records(tmp_path / "none.jsonl", Rejected, StageError, "no examples: generate them first")
    assert read_records(tmp_path / "none.jsonl", Rejected, StageError, None) == []


def test_a_broken_line_names_file_and_line_in_the_stages_error(tmp_path: Path) -> None:
    path = tmp_path / "rejected.jsonl"
    path.write_text('{"id": "a", "reason": "duplicate", "detail": "x", "text": "t"}\n{"id": \n', encoding="utf-8")
    with pytest.raises(StageError, match=r"rejected\.jsonl.*2"):
        read_records(path, Rejected, StageError, None)


def test_the_frame_has_the_given_column_types() -> None:
    df = frame([{"a": "x", "n": 1}, {"a": None, "n": None}], {"a": "String", "n": "Int64"}, StageError)
    assert df.columns == ["a", "n"] and str(df.schema["n"]) == "Int64" and df["n"].null_count() == 1
