"""Five-label verdicts: prompts, strict parsing, and the judgment from both orders."""

from __future__ import annotations

import json

import pytest
from judge_fakes import fenced, load_questions, make_answers

from judge.compare.strength import StrengthItem, parse_strength, preference
from judge.grading.parse import Unparsed
from judge.grading.plan import plan_items


@pytest.mark.parametrize(("reply", "label"), [
    ('{"rationale": "A is right.", "verdict": "A>>B"}', "A>>B"),
    ('```json\n{"rationale": "r", "verdict": "B > A"}\n```', "B>A"),
    ('{"rationale": "r", "verdict": "A<B"}', "B>A"),
    ('Both fine.\n{"rationale": "same", "verdict": "A=B"}', "A=B"),
    ("Answer A is slightly better.\n\nMy final verdict is: [[A>B]]", "A>B"),
    ("판정: B>>A", "B>>A"),
])
def test_a_verdict_is_read_from_json_or_markers(reply: str, label: str) -> None:
    got = parse_strength(reply)
    assert not isinstance(got, Unparsed) and got.verdict == label


@pytest.mark.parametrize("reply", [
    "", '{"rationale": "r", "verdict": "A"}', "[[A>B]] ... on reflection [[B>A]]",
    'first {"verdict": "A>B"} then {"verdict": "B>>A"}', "A is better, I think.",
])
def test_anything_else_is_unparsed_never_a_guess(reply: str) -> None:
    assert isinstance(parse_strength(reply), Unparsed)


def _item(turn: int = 1) -> StrengthItem:
    qs = [q for q in load_questions() if len(q.turns) == 2 and q.category == "writing"][:1]
    answers = make_answers(qs, "m", 2) + make_answers(qs, "base", 1)
    plan = plan_items(qs, answers, mode="pair", model="m", judge_model="j", baseline="base")
    return StrengthItem.from_item(plan.items[turn - 1])


@pytest.mark.parametrize("turn", [1, 2])
def test_both_orders_show_the_answers_swapped_and_ask_for_five_labels(turn: int) -> None:
    item = _item(turn)
    first, second = item.prompt(0), item.prompt(1)
    assert first.template.endswith("pair_strength" + ("_multi" if turn == 2 else ""))
    assert '"A>>B" | "A>B" | "A=B" | "B>A" | "B>>A"' in first.messages[0]["content"]
    enum = first.params()["response_format"]["json_schema"]["schema"]["properties"]["verdict"]["enum"]
    assert enum == ["A>>B", "A>B", "A=B", "B>A", "B>>A"]
    tag = "answer_a" if turn == 1 else "conversation_a"
    assert fenced(first, tag).startswith("<user_1") or "m answers" in fenced(first, tag)
    assert ("base answers" in fenced(second, tag)) and ("m answers" not in fenced(second, tag))
    assert item.prompt(0, attempt=1).nonce != first.nonce  # a retry is a new request


def test_the_judgment_maps_positions_to_the_model_and_keeps_the_strength() -> None:
    item = _item()
    j = item.judgment([parse_strength('{"rationale": "x", "verdict": "A>>B"}'),
                       parse_strength('{"rationale": "y", "verdict": "A=B"}')], cost_usd=0.01)
    assert j.status == "scored" and j.winner == "model" and j.preferences == [2, 0]
    assert j.order_verdicts == ["A>>B", "A=B"] and j.strength is True and not j.consistent
    lost = item.judgment([parse_strength('{"rationale": "", "verdict": "B>A"}'),
                          parse_strength('{"rationale": "", "verdict": "A>>B"}')])
    assert lost.preferences == [-1, -2] and lost.winner == "baseline" and lost.consistent
    half = item.judgment([parse_strength("no idea"), parse_strength('{"rationale": "", "verdict": "A>B"}')])
    assert half.status == "unscored" and half.winner is None and "model-first order" in half.error
    assert json.loads(half.model_dump_json())["order_verdicts"] == [None, "A>B"]
    assert item.key == (j.question_id, "pair", 1, "m", "base", "j", False)
    assert preference("B>>A", model_first=False) == 2
