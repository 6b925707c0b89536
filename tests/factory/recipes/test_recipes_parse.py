"""Reading model outputs (JSON, and the text formats for endpoints without structured output),
and the editable prompt templates."""

from __future__ import annotations

import pytest

from factory.recipes.templates import TemplateError, load_template, parse_template
from factory.recipes.textparse import (
    ParseError,
    TaskDraft,
    extract_json,
    parse_numbered_answers,
    parse_question_list,
    parse_task_list,
    salvage_array_items,
    salvage_string_fields,
)

ALPACA_STYLE = """Here are the tasks you asked for.
###
1. Instruction: Write a haiku about autumn rain.
1. Input:
<noinput>
1. Output:
Cold rain on the roof,
Input: a line that belongs to the poem, not a label
###
2. **Instruction:** Classify the sentiment of the review.
2. Input: The soup was cold and the waiter rude.
2. Output: Negative
###
3. Instruction: Give three tips for saving water.
3. Input:
"""


def test_alpaca_numbered_format_gives_each_task_and_flags_the_incomplete_one():
    tasks = parse_task_list(ALPACA_STYLE)
    assert tasks[0] == TaskDraft("Write a haiku about autumn rain.", "",
                                 "Cold rain on the roof,\nInput: a line that belongs to the poem, not a label")
    assert tasks[1] == TaskDraft("Classify the sentiment of the review.", "The soup was cold and the waiter rude.", "Negative")
    assert isinstance(tasks[2], ParseError) and "task 3 has no output" in str(tasks[2])


def test_korean_labels_without_numbers_and_no_input_markers():
    text = "지시문: 다음 문장을 요약하세요.\n입력: 없음\n출력: 요약입니다.\n\n과제 2\n지시문: 시를 써 주세요.\n입력: <입력 없음>\n출력: 가을 시\n"
    assert parse_task_list(text) == [TaskDraft("다음 문장을 요약하세요.", "", "요약입니다."),
                                     TaskDraft("시를 써 주세요.", "", "가을 시")]


def test_plural_labels_and_a_label_with_nothing_after_it():
    # Both as SmolLM2-135M wrote them (tests/fixtures/real_model): "Instructions:" for the
    # instruction, and an "Output:" label with no text, which the gate then rejects as `empty`.
    text = "Task 1\nInstructions: Write a four-week running plan.\nOutput:\n###\nInstructions: Name a river.\nOutputs: The Nile."
    assert parse_task_list(text) == [TaskDraft("Write a four-week running plan.", "", ""),
                                     TaskDraft("Name a river.", "", "The Nile.")]
    assert parse_numbered_answers("[Answer 1]\n[Answer 2]\nThe second.", 2) == {1: "", 2: "The second."}


def test_answers_numbered_without_markers_are_read_only_when_the_numbers_are_exactly_the_questions():
    assert parse_numbered_answers("1. Paris.\n2. The Nile.", 2) == {1: "Paris.", 2: "The Nile."}
    with pytest.raises(ParseError, match="no '\\[Answer N\\]' markers"):
        parse_numbered_answers("1. Boil water.\n2. Add pasta.\n3. Drain.", 2)  # one answer's own list


def test_text_without_task_labels_is_a_parse_error():
    with pytest.raises(ParseError, match="no 'Instruction:'"):
        parse_task_list("[simulated] The river helps the garden in economics.")


def test_questions_under_keyword_headings():
    text = "[아파트 청약]\n1. 청약 통장은 언제 만들어야 하나요?\n2. 질문: 가점제는 어떻게 계산하나요?\n\n**전세 사기**\n- 전세 사기를 피하려면?\n"
    assert parse_question_list(text, ["아파트 청약", "전세 사기"]) == [
        ("아파트 청약", "청약 통장은 언제 만들어야 하나요?"),
        ("아파트 청약", "가점제는 어떻게 계산하나요?"),
        ("전세 사기", "전세 사기를 피하려면?"),
    ]
    # one keyword: no heading needed; an unknown heading leaves the keyword open
    assert parse_question_list("1. What is escrow?", ["escrow"]) == [("escrow", "What is escrow?")]
    assert parse_question_list("[Other]\n1. Why?", ["a", "b"]) == [("", "Why?")]
    with pytest.raises(ParseError):
        parse_question_list("no list here", ["a"])


def test_numbered_answers_keep_lists_inside_an_answer():
    text = "[답변 1]\n첫 번째 답입니다.\n1. 목록도 답의 일부\n\n[Answer 2]:\nSecond answer."
    assert parse_numbered_answers(text, 2) == {1: "첫 번째 답입니다.\n1. 목록도 답의 일부", 2: "Second answer."}
    assert parse_numbered_answers("Just the answer.", 1) == {1: "Just the answer."}
    with pytest.raises(ParseError):
        parse_numbered_answers("two answers, no markers", 2)


def test_json_from_fences_and_prose_and_salvage_of_a_cut_answer():
    assert extract_json('```json\n{"tasks": []}\n```') == {"tasks": []}
    assert extract_json('Sure! {"a": 1} Hope this helps.') == {"a": 1}
    with pytest.raises(ParseError, match="not JSON"):
        extract_json("no json at all")
    cut = '{"tasks": [{"instruction": "a", "output": "b"}, {"instruction": "c", "output": "d"}, {"instruction": "e", "out'
    assert salvage_array_items(cut, "tasks") == [{"instruction": "a", "output": "b"}, {"instruction": "c", "output": "d"}]
    assert salvage_string_fields('{"answer_1": "one", "answer_2": "tw') == {"answer_1": "one"}


def test_shipped_templates_have_every_section_in_both_languages():
    for lang in ("ko", "en"):
        si = load_template("self_instruct", lang)
        assert {"system", "user", "example", "no_input", "format:json", "format:text"} <= set(si.sections)
        assert {"examples", "format", "num_tasks"} <= si.placeholders("user")
        q = load_template("questions", lang)
        assert {"keywords", "format", "per_keyword"} <= q.placeholders("user")
        a = load_template("answers", lang)
        assert {"questions", "grounding", "format"} <= a.placeholders("user")


def test_template_errors_name_the_file_and_the_fix(tmp_path):
    path = tmp_path / "ko" / "self_instruct.txt"
    bad = parse_template("--- system ---\nS\n--- user ---\n{{examples}} {{mystery}}\n", name="self_instruct", lang="ko", path=path)
    with pytest.raises(TemplateError, match=r"uses \{\{mystery\}\}"):
        bad.fill("user", {"examples": "x"})
    with pytest.raises(TemplateError, match=r"must contain \{\{format\}\}"):
        bad.require(["system", "user"], {"user": ["examples", "format"]})
    with pytest.raises(TemplateError, match="no '--- format:json ---' section"):
        bad.require(["format:json"])
    with pytest.raises(TemplateError, match="text before the first"):
        parse_template("hello\n--- system ---\nS", name="x", lang="ko", path=path)
    with pytest.raises(TemplateError, match="copy factory/prompts/ko/questions.txt"):
        load_template("questions", "ko", tmp_path)


def test_substitution_is_one_pass():
    t = parse_template("--- user ---\nA {{a}} B {{b}}", name="x", lang="en", path=__import__("pathlib").Path("x"))
    assert t.fill("user", {"a": "{{b}}", "b": "2"}) == "A {{b}} B 2"


def test_a_raw_newline_inside_a_json_string_is_read_as_llama_cpp_writes_it() -> None:
    """llama.cpp's JSON grammar lets a raw newline into a string (strict JSON forbids it): the reply
    still has the schema's structure, so it is read, not rejected as unparseable."""
    reply = '{ "tasks" : [{ "instruction": "Name two\nrivers.", "input": "", "output": "The Nile\nand the Han." }] }'
    assert extract_json(reply)["tasks"][0]["output"] == "The Nile\nand the Han."
