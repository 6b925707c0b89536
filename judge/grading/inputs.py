"""What a grading run starts from: the answers, their questions and labels, checked; and what
is left to grade after an earlier run (a rerun grades only items without a scored judgment)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from judge.grading.settings import GradeError, JudgeSettings
from judge.grading.plan import GradingItem
from judge.grading.verdicts import judgment_key
from schemas import (
    Answer,
    EvalSetError,
    JsonlError,
    Judgment,
    Question,
    RunFolder,
    RunFolderError,
    load_questions,
    read_jsonl,
)


@dataclass
class Inputs:
    questions: list[Question]
    answers: list[Answer]
    label: str
    question_files: list[Path]


def _recorded_question_files(run: Path, labels: Sequence[str]) -> list[Path]:
    """The question files the answer commands recorded for `labels` ([answer.LABEL].questions)."""
    try:
        table = RunFolder(run).config_section("answer")
    except RunFolderError:
        return []
    files: list[Path] = []
    for label in labels:
        entry = table.get(label) if isinstance(table, dict) else None
        value = entry.get("questions") if isinstance(entry, dict) else None
        for item in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
            if isinstance(item, str) and Path(item) not in files:
                files.append(Path(item))
    return files


def read_answers(run: Path, *, or_else: str = "") -> list[Answer]:
    """The run's answers; a missing, unreadable or empty file is one GradeError line that says what to do
    (`or_else`: another way out, e.g. leaving the run out of a comparison)."""
    path = RunFolder(run).answers
    make = (f"make them first with `python -m trainer answer --run {run} ...` "
            f"or `python -m judge answer --run {run} ...`{or_else}")
    if not path.is_file():
        raise GradeError(f"no answers at {path}: {make}")
    try:
        answers = read_jsonl(path, Answer)
    except JsonlError as e:
        raise GradeError(f"{e}; fix or move the file, then rerun") from None
    if not answers:
        raise GradeError(f"{path} holds no answers; {make}")
    return answers


def load_inputs(run: Path, settings: JudgeSettings) -> Inputs:
    """Answers, labels and questions, checked; every problem is one GradeError line."""
    path = RunFolder(run).answers
    answers = read_answers(run)
    labels = sorted({a.model for a in answers})
    label = settings.model
    if label is None:
        candidates = [x for x in labels if x != settings.baseline]
        if len(candidates) != 1:
            raise GradeError(f"{path} has answers of {len(labels)} models ({', '.join(labels)}): "
                             "say which to grade with --model LABEL")
        label = candidates[0]
    if label not in labels:
        raise GradeError(f"no answers labelled {label!r} in {path}; labels there: {', '.join(labels)}")
    if settings.baseline is not None and settings.baseline not in labels:
        raise GradeError(f"the baseline {settings.baseline!r} has no answers in {path}; labels there: "
                         f"{', '.join(labels)} (answer the questions with the baseline model first)")
    files = list(settings.questions)
    if not files:
        files = _recorded_question_files(run, [label] + ([settings.baseline] if settings.baseline else []))
        if not files:
            raise GradeError(f"no question file: pass --questions FILE (the file {label!r} answered; "
                             f"{run}/config.toml records none)")
    try:
        questions = load_questions(files)
    except EvalSetError as e:
        raise GradeError(str(e)) from None
    ids = {q.question_id for q in questions}
    if not any(a.model == label and a.question_id in ids for a in answers):
        raise GradeError(f"none of {label!r}'s answers is to a question in {', '.join(map(str, files))}; "
                         "pass the question file the answers were made from")
    return Inputs(questions, answers, label, files)


@dataclass
class Todo:
    items: list[GradingItem]
    first_attempt: dict[tuple[object, ...], int]  # item key -> attempt number to start at
    already_scored: int


def attempts_used(judgment: Judgment) -> int:
    """How many attempt numbers an unscored judgment used (written by this command as `attempts`)."""
    value = (judgment.model_extra or {}).get("attempts")
    return value if isinstance(value, int) and value >= 0 else 0


def left_to_grade(items: Sequence[GradingItem], done: Sequence[Judgment]) -> Todo:
    """Items without a scored judgment; an item recorded unscored starts after its used attempts."""
    scored = {judgment_key(j) for j in done if j.status == "scored"}
    first: dict[tuple[object, ...], int] = {}
    for j in done:
        if j.status == "unscored":
            key = judgment_key(j)
            first[key] = max(first.get(key, 0), attempts_used(j))
    todo = [i for i in items if i.key not in scored]
    return Todo(todo, {i.key: first.get(i.key, 0) for i in todo}, len(items) - len(todo))
