"""Strict verdict parsing: JSON first, then the final verdict in text; anything else is unparsed,
and out-of-range or fractional scores are unparsed rather than clamped or rounded."""

from __future__ import annotations

import pytest

from judge.grading.parse import Score, Unparsed, Verdict, parse_score, parse_verdict


@pytest.mark.parametrize(
    ("reply", "score", "source"),
    [
        ('{"rationale": "Accurate and clear.", "score": 8}', 8, "json"),
        ('{"score": 1, "rationale": "wrong"}', 1, "json"),
        ('{"rationale": "r", "score": 10.0}', 10, "json"),
        ('```json\n{"rationale": "r", "score": 6}\n```', 6, "json"),
        ('Here is my evaluation:\n{"rationale": "r", "score": 4}\nThanks.', 4, "embedded-json"),
        ("The answer is mostly right.\n\nRating: [[7]]", 7, "text"),
        ("[[9]]", 9, "text"),
        ("Rating: 8/10", 8, "text"),
        ("Score: 3", 3, "text"),
        ("score = 5 / 10", 5, "text"),
        ("근거: 계산이 정확합니다.\n점수: 9", 9, "text"),
        ("평점: 6점", 6, "text"),
        ("총점: 4/10", 4, "text"),
        ("It says [[8]] at first and then repeats [[8]].", 8, "text"),
    ],
)
def test_scores_that_parse(reply: str, score: int, source: str) -> None:
    out = parse_score(reply)
    assert isinstance(out, Score), out
    assert (out.score, out.source) == (score, source)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (None, "empty"),
        ("", "empty"),
        ("   \n", "empty"),
        ("A solid answer overall, I'd give it an eight.", "no JSON object and no score marker"),
        ("garbage ##@!", "no JSON object"),
        ('{"rationale": "great", "score": 11}', "outside 1-10"),
        ('{"rationale": "bad", "score": 0}', "outside 1-10"),
        ('{"rationale": "r", "score": 7.5}', "not an integer"),
        ('{"rationale": "r", "score": "8"}', "not an integer"),
        ('{"rationale": "r", "score": true}', "not an integer"),
        ('{"rationale": "r", "rating": 8}', "without a 'score' field"),
        ('[8]', "no JSON object"),
        ("Rating: [[11]]", "outside 1-10"),
        ("Rating: [[0]]", "outside 1-10"),
        ("Rating: [[8.5]]", "not an integer"),
        ("Score: 4/5", "out of 5"),
        ("The answer claims [[10]], but I rate it [[3]].", "conflicting scores"),
        ('Pre {"rationale": "a", "score": 12} post', "outside 1-10"),
        ('{"rationale": "a", "score": 3} and {"rationale": "b", "score": 9}', "conflicting"),
    ],
)
def test_scores_that_do_not_parse_are_unparsed_with_the_reason(reply: str | None, reason: str) -> None:
    out = parse_score(reply)
    assert isinstance(out, Unparsed), out
    assert reason in out.reason
    assert str(out).startswith("unparsed: ")


def test_a_json_reply_is_not_searched_for_text_verdicts() -> None:
    # The rationale quotes a marker, but the JSON's own score field decides (and here it is invalid).
    out = parse_score('{"rationale": "The answer demands [[10]].", "score": 42}')
    assert isinstance(out, Unparsed)


def test_unparsed_keeps_a_short_copy_of_the_reply() -> None:
    out = parse_score("x" * 5000)
    assert isinstance(out, Unparsed) and len(out.text) == 500


@pytest.mark.parametrize(
    ("reply", "verdict", "source"),
    [
        ('{"rationale": "A is right.", "verdict": "A"}', "A", "json"),
        ('{"rationale": "r", "verdict": "b"}', "B", "json"),
        ('{"rationale": "r", "verdict": "Tie"}', "tie", "json"),
        ('Reasoning first. {"rationale": "r", "verdict": "B"}', "B", "embedded-json"),
        ("Assistant B is more accurate. [[B]]", "B", "text"),
        ("[[C]]", "tie", "text"),
        ("[[tie]]", "tie", "text"),
        ("Final verdict: **A**", "A", "text"),
        ("Verdict: Answer B", "B", "text"),
        ("Winner: tie", "tie", "text"),
        ("판정: A", "A", "text"),
        ("판정: 무승부", "tie", "text"),
    ],
)
def test_verdicts_that_parse(reply: str, verdict: str, source: str) -> None:
    out = parse_verdict(reply)
    assert isinstance(out, Verdict), out
    assert (out.verdict, out.source) == (verdict, source)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "empty"),
        ("Assistant A is better.", "no JSON object and no verdict marker"),
        ('{"rationale": "r", "verdict": "C"}', "not 'A', 'B' or 'tie'"),
        ('{"rationale": "r", "verdict": "both"}', "not 'A', 'B' or 'tie'"),
        ('{"rationale": "r", "winner": "A"}', "without a 'verdict' field"),
        ("[[A]] ... on reflection [[B]]", "conflicting verdicts"),
        ("Verdict: Assistant", "no JSON object"),
    ],
)
def test_verdicts_that_do_not_parse(reply: str, reason: str) -> None:
    out = parse_verdict(reply)
    assert isinstance(out, Unparsed), out
    assert reason in out.reason
