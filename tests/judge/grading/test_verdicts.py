"""Parsed replies -> Judgment records: both orders of a pair combined, failures unscored."""

from __future__ import annotations

import pytest

from judge.grading.parse import Score, Unparsed, Verdict
from judge.grading.verdicts import judgment_key, order_winner, pair_judgment, single_judgment
from schemas import Question

Q = Question(question_id="q7", category="coding", lang="ko", turns=["t1", "t2"])


def v(letter: str) -> Verdict:
    return Verdict(letter, f"chose {letter}", "json")  # type: ignore[arg-type]


def pair(first: Verdict | Unparsed, second: Verdict | Unparsed):
    return pair_judgment(question=Q, model="lora", baseline="base", turn=2, judge_model="judge",
                         model_first=first, baseline_first=second, request_keys=["k1", "k2"], cost_usd=0.002)


@pytest.mark.parametrize(
    ("first", "second", "winner", "consistent"),
    [
        ("A", "B", "model", True),      # model preferred in both positions
        ("B", "A", "baseline", True),   # baseline preferred in both positions
        ("tie", "tie", "tie", True),
        ("A", "A", "tie", False),       # always position A: a disagreement, counted as a tie
        ("B", "B", "tie", False),       # always position B
        ("A", "tie", "tie", False),
        ("tie", "A", "tie", False),
    ],
)
def test_two_orders_combine_into_one_winner(first: str, second: str, winner: str, consistent: bool) -> None:
    j = pair(v(first), v(second))
    assert j.status == "scored"
    assert j.winner == winner
    assert j.model_extra["consistent"] is consistent
    assert j.model_extra["order_verdicts"] == [first, second]
    assert (j.mode, j.turn, j.model, j.baseline, j.question_id) == ("pair", 2, "lora", "base", "q7")
    assert j.model_extra["category"] == "coding" and j.model_extra["lang"] == "ko"
    assert j.request_keys == ["k1", "k2"] and j.cost_usd == 0.002


@pytest.mark.parametrize("which", [0, 1, 2])
def test_an_unparsed_order_makes_the_pair_unscored_not_a_guess(which: int) -> None:
    bad = Unparsed("no verdict marker", "hmm")
    first = bad if which in (0, 2) else v("A")
    second = bad if which in (1, 2) else v("B")
    j = pair(first, second)
    assert j.status == "unscored" and j.winner is None and j.score is None
    assert ("model-first order unparsed" in j.error) == (which in (0, 2))
    assert ("baseline-first order unparsed" in j.error) == (which in (1, 2))
    assert "consistent" not in j.model_extra


def test_order_winner_maps_positions_to_models() -> None:
    assert order_winner("A", model_position="A") == "model"
    assert order_winner("B", model_position="A") == "baseline"
    assert order_winner("A", model_position="B") == "baseline"
    assert order_winner("tie", model_position="B") == "tie"


def test_single_judgment_scored_or_unscored() -> None:
    ok = single_judgment(question=Q, model="lora", turn=1, judge_model="judge", outcome=Score(9, "good", "text"))
    assert (ok.status, ok.score, ok.mode, ok.rationale) == ("scored", 9.0, "single", "good")
    ref = single_judgment(question=Q, model="lora", turn=1, judge_model="judge", outcome=Score(2, "wrong", "json"),
                          reference=True)
    assert ref.mode == "reference"
    bad = single_judgment(question=Q, model="lora", turn=1, judge_model="judge",
                          outcome=Unparsed("score 11 is outside 1-10", "[[11]]"))
    assert (bad.status, bad.score) == ("unscored", None)
    assert bad.error == "unparsed: score 11 is outside 1-10"


def test_judgment_key_tells_gradings_apart() -> None:
    a = pair(v("A"), v("B"))
    b = pair(v("B"), v("A"))
    assert judgment_key(a) == judgment_key(b)  # the same grading, a rerun's outcome replaces it
    single = single_judgment(question=Q, model="lora", turn=2, judge_model="judge", outcome=Score(5, "", "json"))
    assert judgment_key(single) != judgment_key(a)
