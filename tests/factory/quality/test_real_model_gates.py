"""The gates against texts a real model wrote (tests/fixtures/real_model/cases.jsonl, SmolLM2-135M-
Instruct through llama.cpp's OpenAI-compatible server, to the recipes' own prompts): every
placeholder, label, refusal, echo, repetition and empty case is rejected with its reason, and
every ordinary answer is kept, in English and Korean."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from factory.quality.filters import FilterSettings, check_fields
from factory.quality.replies import tidy

CASES = Path(__file__).resolve().parents[2] / "fixtures" / "real_model" / "cases.jsonl"
REJECTED = ("placeholder", "label", "refusal", "echo", "repetition", "empty")
# Cases per verdict at least. SmolLM2-135M wrote placeholders, echoes and (to questions about what
# it cannot do) refusals often enough; bare labels, empty fields and loops it wrote rarely in the
# ~80 minutes of server time the set was made in, and its Korean is mostly gibberish that is none
# of these (so no Korean text is among the kept). test_replies.py pins more forms of those by hand.
AT_LEAST = {"placeholder": 20, "refusal": 20, "echo": 20, "keep": 40, "label": 5, "empty": 4, "repetition": 3}
# A question alone is checked as the gate checks questions: without truncated, refusal and echo.
QUESTION_OFF = ["truncated", "refusal", "echo"]


def load() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines() if line.strip()]


def verdict(case: dict[str, Any]) -> tuple[str, str]:
    """The gate's verdict on a case. `disabled` in a case names an earlier gate that rejects it
    too ("Look at the photo I sent" is `unsupported` before its refusal is looked at)."""
    question = case["kind"] == "question"
    settings = FilterSettings(lang=case["lang"], disabled=[*(QUESTION_OFF if question else []), *case.get("disabled", [])])
    output = case["instruction"] if question else case["output"]
    r, _ = check_fields(case["instruction"], case["input"], output, None, settings)
    return (r.reason, r.detail) if r else ("keep", "")


def test_the_fixture_set_is_large_enough_in_both_languages() -> None:
    counts = Counter(c["expect"] for c in load())
    assert all(counts[r] >= n for r, n in AT_LEAST.items()), counts
    langs = Counter((c["expect"], c["lang"]) for c in load())
    assert langs["placeholder", "ko"] >= 4 and langs["placeholder", "en"] >= 20, langs
    assert langs["echo", "ko"] >= 4 and langs["label", "ko"] >= 3, langs
    for c in load():
        assert c["source"].get("how") and c["source"].get("template"), c  # how each text was obtained


@pytest.mark.parametrize("case", load(), ids=lambda c: f"{c['expect']}-{c['lang']}-{c['id']}")
def test_each_real_text_gets_its_verdict(case: dict[str, Any]) -> None:
    reason, detail = verdict(case)
    assert reason == case["expect"], f"{detail} | {case['instruction'][:80]!r} -> {case['output'][:120]!r}"


def test_ordinary_answers_with_parentheses_and_quotes_are_among_the_kept() -> None:
    kept = [c for c in load() if c["expect"] == "keep"]
    assert sum("(" in c["output"] or "(" in c["instruction"] for c in kept) >= 5
    assert sum('"' in c["output"] + c["instruction"] or "'" in c["output"] for c in kept) >= 5


def test_the_caesar_salad_of_the_issue_is_unwrapped_and_kept() -> None:
    # issue #25: '"How to make a homemade Caesar Salad"' was kept with its quotes
    fields, done = tidy('"How to make a homemade Caesar Salad"', '"This is my favorite meal."',
                        "\"It's easy, you just need ingredients and some cool dressing that goes well with your salad.\"")
    assert fields[0] == "How to make a homemade Caesar Salad" and fields[1] == "This is my favorite meal."
    assert fields[2].startswith("It's easy") and len(done) == 3


def test_a_quoted_output_alone_stays_quoted() -> None:
    fields, done = tidy("Give me a famous line from Hamlet.", "", '"To be, or not to be."')
    assert fields[2] == '"To be, or not to be."' and done == []


def test_a_leading_label_is_stripped_and_a_bare_one_rejected() -> None:
    r, fields = check_fields("Instruction: Name a river in Egypt.", "", "Output: The Nile.")
    assert r is None and fields == ("Name a river in Egypt.", "", "The Nile.")
    r, _ = check_fields("Name a river in Egypt.", "", "**Output:**")
    assert r is not None and r.reason == "label"


def test_each_new_reason_can_be_switched_off() -> None:
    for case in load():
        if case["expect"] in REJECTED and case["kind"] == "example":
            settings = FilterSettings(lang=case["lang"], disabled=[case["expect"], *case.get("disabled", [])])
            r, _ = check_fields(case["instruction"], case["input"], case["output"], None, settings)
            assert r is None or r.reason != case["expect"]
