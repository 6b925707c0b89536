"""Evaluation questions and answers shared by the local and the remote answer commands and the judge."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from schemas.errors import EvalSetError
from schemas.jsonl import JsonlError, read_jsonl
from schemas.records import Answer, Question

# MT-Bench's sampling temperature per category (greedy where there is one right answer).
MT_BENCH_TEMPERATURE = {
    "writing": 0.7, "roleplay": 0.7,
    "extraction": 0.0, "math": 0.0, "coding": 0.0, "reasoning": 0.0,
    "stem": 0.1, "humanities": 0.1,
    "real_estate": 0.1,  # domain knowledge, like stem and humanities
}
DEFAULT_TEMPERATURE = 0.7  # MT-Bench's for any other category


def temperature_for(category: str, sampling: str) -> float:
    if sampling == "greedy":
        return 0.0
    return MT_BENCH_TEMPERATURE.get(category, DEFAULT_TEMPERATURE)


def load_questions(paths: Path | Iterable[Path]) -> list[Question]:
    """The questions of one or more files; ids must be unique across them."""
    paths = [paths] if isinstance(paths, Path) else list(paths)
    questions: list[Question] = []
    where: dict[str, Path] = {}
    for path in paths:
        if not path.is_file():
            raise EvalSetError(f"question file {path} not found; pass --questions with an existing JSONL file")
        try:
            loaded = read_jsonl(path, Question)
        except JsonlError as e:
            raise EvalSetError(f"question file: {e}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise EvalSetError(f"question file {path} cannot be read: {e}") from None
        if not loaded:
            raise EvalSetError(f"question file {path} holds no questions")
        for q in loaded:
            if q.question_id in where:
                same = "appears twice" if where[q.question_id] == path else f"is in both {where[q.question_id]} and"
                raise EvalSetError(f"{path}: question id {q.question_id} {same}; ids must be unique")
            where[q.question_id] = path
        questions += loaded
    return questions


def fully_answered(path: Path, label: str, questions: Sequence[Question]) -> set[str]:
    """Ids of the questions `label` has answered in full (every turn) in the answers file `path`."""
    turns = {q.question_id: len(q.turns) for q in questions}
    try:
        return {a.question_id for a in read_jsonl(path, Answer)
                if a.model == label and len(a.turns) >= turns.get(a.question_id, 1 << 30)}
    except JsonlError as e:
        raise EvalSetError(f"{e}; fix or move the file, then rerun") from None
