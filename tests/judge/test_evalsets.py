"""The shipped evaluation sets, and MT-Bench-format question files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from judge_fakes import EVALSETS

from judge.grading.plan import REFERENCE_CATEGORIES
from judge.grading.prompts import pair_prompts, single_prompt
from schemas import Answer, Question, read_jsonl

CATEGORIES = {"writing", "roleplay", "extraction", "reasoning", "math", "coding", "stem", "humanities", "real_estate"}


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_each_language_covers_every_category_with_five_questions(lang: str) -> None:
    questions = read_jsonl(EVALSETS / f"{lang}.jsonl", Question)
    assert Counter(q.category for q in questions) == {c: 5 for c in CATEGORIES}
    assert {q.lang for q in questions} == {lang}
    for q in questions:
        assert 1 <= len(q.turns) <= 2 and all(t.strip() for t in q.turns), q.question_id
        assert q.question_id.startswith(f"{lang}-")


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_reference_categories_have_a_reference_for_every_turn(lang: str) -> None:
    for q in read_jsonl(EVALSETS / f"{lang}.jsonl", Question):
        if q.category in REFERENCE_CATEGORIES:
            assert q.reference is not None and len(q.reference) == len(q.turns), q.question_id
            assert all(r.strip() for r in q.reference), q.question_id


def test_korean_questions_are_written_in_korean() -> None:
    for q in read_jsonl(EVALSETS / "ko.jsonl", Question):
        text = "".join(q.turns)
        hangul = sum("\uac00" <= ch <= "\ud7a3" for ch in text)
        assert hangul >= 5, f"{q.question_id} has almost no Hangul"


def test_question_ids_are_unique_across_the_sets() -> None:
    ids = [q.question_id for f in sorted(EVALSETS.glob("*.jsonl")) for q in read_jsonl(f, Question)]
    assert len(ids) == len(set(ids)) == 90


def test_every_shipped_question_turns_into_grading_prompts() -> None:
    for f in sorted(EVALSETS.glob("*.jsonl")):
        for q in read_jsonl(f, Question):
            a = Answer(question_id=q.question_id, model="m", turns=["x"] * len(q.turns))
            b = Answer(question_id=q.question_id, model="b", turns=["y"] * len(q.turns))
            for turn in range(1, len(q.turns) + 1):
                has_ref = q.category in REFERENCE_CATEGORIES
                p = single_prompt(q, a, turn=turn, reference=has_ref)
                assert p.template.startswith(f"{q.lang}/")
                assert len(pair_prompts(q, a, b, turn=turn, reference=has_ref)) == 2


def test_mt_bench_format_question_files_load_as_they_are(tmp_path: Path) -> None:
    # MT-Bench's layout: integer ids, no lang, a reference list only for some categories.
    lines = [
        {"question_id": 101, "category": "math", "turns": ["What is 12 squared?", "And its cube?"],
         "reference": ["144", "1728"]},
        {"question_id": 102, "category": "writing", "turns": ["Write a haiku about rain."]},
    ]
    path = tmp_path / "question.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    questions = read_jsonl(path, Question)
    assert [q.question_id for q in questions] == ["101", "102"]
    p = single_prompt(questions[0], Answer(question_id="101", model="m", turns=["144", "1728"]), turn=2, reference=True)
    assert p.template == "en/reference_multi"  # no lang: English prompts
