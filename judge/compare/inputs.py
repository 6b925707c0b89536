"""What a comparison compares: the answers of every run, the baseline's, and the questions.

Each run folder holds `eval/answers.jsonl` with one or more labels (`trainer answer`, `judge answer`).
Every label except the baseline's is a model of the comparison, named `RUN/LABEL` (the run folder's
name), so two runs may both call their answers "lora". The baseline's answers come from the first
run that has answers labelled `--baseline`; runs whose baseline answers differ from those are named
(the comparison then is not on the same footing) but not refused: greedy decoding on another machine
can change a few tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from judge.grading.inputs import _recorded_question_files, read_answers
from judge.grading.settings import GradeError
from schemas import Answer, EvalSetError, Question, load_questions


@dataclass
class ModelSource:
    name: str  # RUN/LABEL
    run: Path
    label: str


@dataclass
class CompareInputs:
    questions: list[Question]
    answers: list[Answer]  # relabelled: model = RUN/LABEL, the baseline's = its label
    models: list[ModelSource]
    baseline: str
    baseline_run: Path
    question_files: list[Path]
    notes: list[str] = field(default_factory=list)


def _read_answers(run: Path) -> list[Answer]:
    return read_answers(run, or_else=f", or leave {run} out of --runs")


def load_compare_inputs(runs: Sequence[Path], baseline: str, questions: Sequence[Path] = ()) -> CompareInputs:
    """Every run's answers, checked; every problem is one GradeError line that says what to change."""
    if not runs:
        raise GradeError("no runs to compare: give --runs runs/A runs/B ...")
    names = [r.name for r in runs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise GradeError(f"two runs are both named {twice[0]!r}: models are named RUN/LABEL, so give runs with distinct folder names")
    answers: list[Answer] = []
    models: list[ModelSource] = []
    base_answers: dict[str, Answer] | None = None
    base_run: Path | None = None
    notes: list[str] = []
    for run in runs:
        own = _read_answers(run)
        labels = sorted({a.model for a in own})
        for label in labels:
            if label == baseline:
                continue
            name = f"{run.name}/{label}"
            models.append(ModelSource(name, run, label))
            answers += [a.model_copy(update={"model": name}) for a in own if a.model == label]
        theirs = {a.question_id: a for a in own if a.model == baseline}
        if not theirs:
            continue
        if base_answers is None:
            base_answers, base_run = theirs, run
        else:
            differ = sum(1 for q, a in theirs.items() if q in base_answers and base_answers[q].turns != a.turns)
            if differ:
                notes.append(f"{run}: {differ} answers of the baseline {baseline!r} differ from those in {base_run}; "
                             f"the models are compared with those of {base_run}")
    if base_answers is None or base_run is None:
        raise GradeError(f"no run has answers labelled {baseline!r} (the baseline): answer the questions with the "
                         f"baseline model in one of the runs, or pick --baseline among the labels there")
    if not models:
        raise GradeError(f"the runs hold only the baseline's answers ({baseline!r}): nothing to compare with it")
    answers += list(base_answers.values())
    files = list(questions)
    if not files:
        for run in runs:
            for f in _recorded_question_files(run, [baseline] + [m.label for m in models if m.run == run]):
                if f not in files:
                    files.append(f)
        if not files:
            raise GradeError("no question file: pass --questions FILE (the runs' config.toml record none)")
    try:
        qs = load_questions(files)
    except EvalSetError as e:
        raise GradeError(str(e)) from None
    ids = {q.question_id for q in qs}
    if not any(a.question_id in ids for a in base_answers.values()):
        raise GradeError(f"none of the baseline's answers is to a question in {', '.join(map(str, files))}; "
                         "pass the question file the answers were made from")
    return CompareInputs(qs, answers, models, baseline, base_run, files, notes)
