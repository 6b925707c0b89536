"""factory.quality.replies: the placeholders and labels come from the prompt templates, and each
gate says what it saw. Real model texts are in test_real_model_gates.py; these are written by hand
to pin each rule, and its precision, in both languages."""

from __future__ import annotations

from pathlib import Path

import pytest

from factory.quality import Deduper
from factory.quality.filters import FilterSettings, check, check_fields
from factory.quality.replies import default_markers, markers_of, placeholder
from factory.recipes.base import Candidate, Gate
from factory.recipes.templates import load_template, parse_template
from schemas import Example, Provenance, Rejected


def reason(instruction: str, output: str, input: str = "", lang: str | None = None) -> str | None:
    r, _ = check_fields(instruction, input, output, None, FilterSettings(lang=lang))
    return r.reason if r else None


def test_every_placeholder_and_label_of_the_shipped_templates_is_known_in_both_languages() -> None:
    mk = default_markers()
    for text in ("the instruction", "the input", "the output", "the answer to question 1", "question", "noinput",
                 "지시문", "입력", "출력", "1번 질문의 답변", "질문", "입력 없음", "답변 번호"):
        assert mk.is_bracketed(text), text
    assert not mk.is_bracketed("keyword") and not mk.is_bracketed("답변 1")  # "[keyword]": a label
    for text in ("...", "질문", "키워드", "지시문", "출력"):
        assert mk.is_quoted(text), text  # the JSON formats' example values
    assert {"instruction", "input", "output", "task", "answer", "지시문", "입력", "출력", "과제", "답변", "키워드"} <= mk.labels


def test_an_edited_template_teaches_the_gate_its_own_placeholder(tmp_path: Path) -> None:
    shipped = load_template("self_instruct", "en")
    text = "\n".join(f"--- {k} ---\n{v}" for k, v in shipped.sections.items())
    edited = parse_template(text.replace("(the output)", "(your model answer here)"), name="self_instruct", lang="en",
                            path=tmp_path / "self_instruct.txt")
    ex = Example(id="e", instruction="Name a river in Egypt.", output="(your model answer here)")
    assert check(ex) is None  # the shipped templates do not have it
    gate = Gate(FilterSettings(), Deduper(), "en")
    gate.learn_prompts(edited)
    prov = Provenance(recipe="self-instruct", model="m", request_key="k")
    [record] = gate.admit_many([Candidate("e", ex.instruction, "", ex.output, prov)])
    assert isinstance(record, Rejected) and record.reason == "placeholder"
    assert "(your model answer here)" in record.detail
    assert markers_of([edited.sections]).is_bracketed("your model answer here")


@pytest.mark.parametrize("instruction, output, expect", [
    ("(the instruction)", "(the output)", "placeholder"),
    ("(지시문)", "(출력)", "placeholder"),
    ("퀵(다), 응", "(1번 질문의 답변, 2024-69)", "placeholder"),  # issue #25
    ("Name a river.", "<noinput>", "placeholder"),
    ("강 이름을 하나 대 주세요.", "<입력 없음>", "placeholder"),
    ("Write {{instruction}} here.", "Done.", "placeholder"),
    ("Name a river.", "Output:", "label"),
    ("강 이름을 하나 대 주세요.", "[답변 2]", "label"),
    ("강 이름을 하나 대 주세요.", "나일강입니다.\n2. 지시문: 산 이름을 대 주세요.", "label"),
    ("Name a river.", "The Nile.\nInstruction: Name a mountain.", "label"),
    ("세종대왕은 무엇을 만들었나요?", "세종대왕은 무엇을 만들었나요?", "echo"),
    ("What is the capital of France?", "1. What is the capital of France?\n2. Paris.", "echo"),
    ("비에 대한 시를 써 주세요.", "비가 온다 비가 온다 " * 8, "repetition"),
    ("Write a poem.", "The rain falls down.\n" * 5, "repetition"),
    ("Name a river.", '""', "empty"),
    ("Name a river.", "...", "empty"),
    ("Name a river.", " \n ", "empty"),
])
def test_each_gate(instruction: str, output: str, expect: str) -> None:
    assert reason(instruction, output) == expect


@pytest.mark.parametrize("instruction, input, output", [
    # parentheses, quotes, brackets and labels in ordinary answers
    ("Explain what a function's input and output are.", "", "A function takes an input (the argument) and gives an output (the return value)."),
    ("Write a function that sums a list.", "", "def total(xs):\n    return sum(xs)\n\nInput: [1, 2]\nOutput: 3"),
    ("Give me a famous line from Hamlet.", "", '"To be, or not to be: that is the question."'),
    ("Classify each review.", "", "1. Positive\n2. Negative\n3. Positive\n4. Positive"),
    ("What is 12 times 12?", "", "144"),
    ("Translate 'question' into Korean.", "", "질문"),
    ("질문이라는 말을 영어로 옮겨 주세요.", "", "question"),
    ("전세와 월세의 차이를 설명해 주세요.", "", "전세(傳貰)는 보증금을 맡기고 월세 없이 사는 방식이고, 월세는 보증금과 함께 매달 임대료를 내는 방식입니다."),
    ("\"좋아요\"를 영어로 번역해 주세요.", "", "\"Like\" 또는 \"Good\"입니다."),
    ("Make a four-week running plan.", "", ("Week 1: run 2 km three times.\nWeek 2: run 3 km three times.\n"
                                            "Week 3: run 4 km three times.\nWeek 4: run 5 km three times.")),
    ("Rewrite this sentence more politely.", "Give me the report now.", "Could you send me the report when you have a moment?"),
    ("What is the capital of France?", "", "What is the capital of France? It is Paris, on the Seine, with about two million people."),
    ("Answer with a task header.", "", "Task 1 is done; task 2 is next."),
    ("Who wrote Hamlet?", "", "Answer: William Shakespeare."),
])
def test_ordinary_answers_are_kept(instruction: str, input: str, output: str) -> None:
    assert reason(instruction, output, input) is None


def test_a_single_word_placeholder_counts_only_in_its_brackets_or_quotes() -> None:
    assert placeholder({"output": "질문"}) is None
    assert placeholder({"output": "(질문)"}) is not None
    assert placeholder({"output": '"질문"'}) is not None
    assert placeholder({"output": "The function returns a value (the output of f)."}) is None


def test_the_new_reasons_can_be_switched_off_and_unknown_names_are_refused() -> None:
    ex = Example(id="e", instruction="(the instruction)", output="(the output)")
    assert check(ex, None, FilterSettings(disabled=["placeholder"])) is None
    with pytest.raises(ValueError, match="unknown filter"):
        FilterSettings(disabled=["placeholders"])
