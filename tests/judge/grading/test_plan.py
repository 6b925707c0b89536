"""Grading plans over the shipped question sets, driven by scripted judges: swap logic, retries,
unscored items, resume."""

from __future__ import annotations

import pytest
from judge_fakes import always_position_a, garbage, load_questions, make_answers, prefers_longer

from judge.grading.plan import REFERENCE_CATEGORIES, grade_sync, pending, plan_items
from judge.grading.prompts import GradingPrompt
from schemas import Question


@pytest.fixture(scope="module")
def questions() -> list[Question]:
    return load_questions()


@pytest.fixture(scope="module")
def answers(questions):
    return make_answers(questions, "lora", reps=3) + make_answers(questions, "base", reps=1)


def n_turns(questions) -> int:
    return sum(len(q.turns) for q in questions)


def test_judge_that_always_prefers_position_a_yields_only_inconsistent_ties(questions, answers) -> None:
    plan = plan_items(questions, answers, mode="pair", model="lora", baseline="base", judge_model="fake")
    assert len(plan.items) == n_turns(questions) and not plan.skipped
    judgments = list(grade_sync(plan.items, always_position_a))
    assert {j.winner for j in judgments} == {"tie"}
    assert not any(j.model_extra["consistent"] for j in judgments)


def test_position_blind_judge_is_consistent_and_its_winner_is_kept(questions, answers) -> None:
    plan = plan_items(questions, answers, mode="pair", model="lora", baseline="base", judge_model="fake")
    judgments = list(grade_sync(plan.items, prefers_longer))
    assert {j.winner for j in judgments} == {"model"}  # lora's answers are three times longer
    assert all(j.model_extra["consistent"] for j in judgments)


def test_garbage_judge_yields_unscored_items_after_retries(questions, answers) -> None:
    asked: list[GradingPrompt] = []

    def judge(prompt: GradingPrompt) -> str:
        asked.append(prompt)
        return garbage(prompt)

    plan = plan_items(questions[:3], answers, mode="single", model="lora", judge_model="fake")
    judgments = list(grade_sync(plan.items, judge, retries=2))
    assert all(j.status == "unscored" and j.score is None for j in judgments)
    assert len(asked) == 3 * len(plan.items)  # first try + 2 retries each
    # each retry is a different request (new nonce), so a ledger cannot replay the bad reply
    first_item_tries = asked[:3]
    assert len({p.nonce for p in first_item_tries}) == 3


def test_retry_after_one_bad_reply_scores_the_item(questions, answers) -> None:
    replies = iter(["no idea", '{"rationale": "ok", "score": 6}'])
    plan = plan_items(questions[:1], answers, mode="single", model="lora", judge_model="fake")
    j = next(grade_sync(plan.items[:1], lambda p: next(replies), retries=1))
    assert (j.status, j.score) == ("scored", 6.0)


def test_reference_mode_grades_only_questions_with_references(questions, answers) -> None:
    plan = plan_items(questions, answers, mode="reference", model="lora", judge_model="fake")
    assert plan.items and all(i.question.category in REFERENCE_CATEGORIES for i in plan.items)
    assert all(i.reference for i in plan.items)
    assert len(plan.items) + len(plan.skipped) == n_turns(questions)
    assert all("no reference answer" in s for s in plan.skipped)
    j = next(grade_sync(plan.items[:1], prefers_longer))
    assert j.mode == "reference"


def test_pairs_are_reference_guided_in_reference_categories(questions, answers) -> None:
    plan = plan_items(questions, answers, mode="pair", model="lora", baseline="base", judge_model="fake")
    for item in plan.items:
        assert item.reference == (item.question.category in REFERENCE_CATEGORIES)
    off = plan_items(questions, answers, mode="pair", model="lora", baseline="base", judge_model="fake",
                     pair_reference=False)
    assert not any(i.reference for i in off.items)


def test_missing_answers_are_skipped_with_the_reason(questions, answers) -> None:
    partial = [a for a in answers if not (a.model == "base" and a.question_id == questions[0].question_id)]
    plan = plan_items(questions, partial, mode="pair", model="lora", baseline="base", judge_model="fake")
    assert len(plan.skipped) == len(questions[0].turns)
    assert "no answer from baseline 'base'" in plan.skipped[0]


def test_rerun_grades_only_what_is_missing(questions, answers) -> None:
    plan = plan_items(questions, answers, mode="single", model="lora", judge_model="fake")
    first = list(grade_sync(plan.items[:10], prefers_longer)) + list(grade_sync(plan.items[10:12], garbage))
    todo = pending(plan.items, first)
    # the 10 scored items are done; the 2 unscored ones are graded again
    assert len(todo) == len(plan.items) - 10
    assert {i.key for i in todo} >= {i.key for i in plan.items[10:12]}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(mode="pair"), "needs a baseline"),
        (dict(mode="pair", baseline="lora"), "both 'lora'"),
        (dict(mode="best"), "mode must be one of"),
    ],
)
def test_bad_plans_are_refused(questions, answers, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        plan_items(questions, answers, model="lora", judge_model="fake", **kwargs)
