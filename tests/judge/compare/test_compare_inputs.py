"""The comparison's inputs: what is refused, with what message (the costs: test_compare_cost.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from compare_fakes import make_runs, some_questions

from judge.compare.inputs import load_compare_inputs
from judge.grading.settings import GradeError


def test_models_are_named_run_slash_label_and_the_baseline_comes_from_the_first_run(tmp_path: Path) -> None:
    runs = make_runs(tmp_path, some_questions(2, 1))
    got = load_compare_inputs(runs, "base", [tmp_path / "questions.jsonl"])
    assert [m.name for m in got.models] == ["weak/lora", "mid/lora", "strong/lora"]
    assert got.baseline_run == runs[0] and not got.notes
    assert {a.model for a in got.answers} == {"weak/lora", "mid/lora", "strong/lora", "base"}


def test_bad_inputs_say_what_to_change(tmp_path: Path) -> None:
    runs = make_runs(tmp_path, some_questions(2, 0))
    q = [tmp_path / "questions.jsonl"]
    with pytest.raises(GradeError, match="no run has answers labelled 'gpt'"):
        load_compare_inputs(runs, "gpt", q)
    with pytest.raises(GradeError, match="no answers at .*leave .* out of --runs"):
        load_compare_inputs([*runs, tmp_path / "runs" / "empty"], "base", q)
    twin = tmp_path / "other" / "weak"
    twin.mkdir(parents=True)
    (twin / "eval").mkdir()
    (twin / "eval" / "answers.jsonl").write_text((runs[0] / "eval" / "answers.jsonl").read_text())
    with pytest.raises(GradeError, match="two runs are both named 'weak'"):
        load_compare_inputs([runs[0], twin], "base", q)
    with pytest.raises(GradeError, match="no question file: pass --questions"):
        load_compare_inputs(runs, "base")


def test_differing_baseline_answers_are_named(tmp_path: Path) -> None:
    questions = some_questions(2, 0)
    runs = make_runs(tmp_path, questions)
    path = runs[1] / "eval" / "answers.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(line.replace("An answer.", "Another answer.") if '"base"' in line else line
                              for line in lines) + "\n")
    got = load_compare_inputs(runs, "base", [tmp_path / "questions.jsonl"])
    assert len(got.notes) == 1 and "2 answers of the baseline 'base' differ" in got.notes[0]
