"""factory.recipes.seeds: both seed formats, keywords, eval questions, and errors that name file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory.errors import FactoryError
from factory.recipes.seeds import (
    SeedFileError,
    load_eval_items,
    load_keywords,
    load_seed_tasks,
    seed_dedup_items,
)

SELF_INSTRUCT = [
    {"id": "seed_task_0", "name": "breakfast_suggestion", "instruction": "Is there anything I can eat for a breakfast?",
     "instances": [{"input": "", "output": "Yes, oatmeal."}], "is_classification": False},
    {"id": "seed_task_1", "name": "antonym", "instruction": "Give the antonym of the word.",
     "instances": [{"input": "hot", "output": "cold"}, {"input": "up", "output": "down"}], "is_classification": True},
]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_self_instruct_format(tmp_path: Path) -> None:
    f = write_lines(tmp_path / "seed_tasks.jsonl", [json.dumps(r) for r in SELF_INSTRUCT])
    tasks = load_seed_tasks(f)
    assert [t.id for t in tasks] == ["seed_task_0", "seed_task_1"]
    assert tasks[1].name == "antonym" and tasks[1].is_classification
    assert [(i.input, i.output) for i in tasks[1].instances] == [("hot", "cold"), ("up", "down")]


def test_simple_format_and_mixed(tmp_path: Path) -> None:
    f = write_lines(tmp_path / "seeds.jsonl", [
        json.dumps({"instruction": "서울의 명소를 세 곳 추천해 주세요.", "output": "경복궁, 남산, 북촌."}, ensure_ascii=False),
        "",
        json.dumps({"instruction": "Translate to French.", "input": "Good morning", "id": 42}),
        json.dumps({"instruction": "Write a haiku about rain."}),
        json.dumps(SELF_INSTRUCT[0]),
    ])
    tasks = load_seed_tasks(f)
    assert [t.id for t in tasks] == ["seed-1", "42", "seed-3", "seed_task_0"]
    assert tasks[0].instances[0].output == "경복궁, 남산, 북촌."
    assert tasks[1].instances[0].input == "Good morning"
    assert tasks[2].instances == []


def test_seed_dedup_items(tmp_path: Path) -> None:
    tasks = load_seed_tasks(write_lines(tmp_path / "s.jsonl", [json.dumps(r) for r in SELF_INSTRUCT]))
    assert seed_dedup_items(tasks) == [
        ("seed_task_0", "Is there anything I can eat for a breakfast?"), ("seed_task_1", "Give the antonym of the word.")]
    assert seed_dedup_items(tasks, "prompt")[1:] == [
        ("seed_task_1", "Give the antonym of the word.\n\nhot"), ("seed_task_1#2", "Give the antonym of the word.\n\nup")]


@pytest.mark.parametrize("lines, message", [
    (['{"instruction": "ok"}', '{"instruction": "broken"'], ":2: not valid JSON"),
    (['{"instruction": "ok"}', '', '{"name": "x"}'], ":3: missing field 'instruction' (fields present: name)"),
    (['{"instruction": ""}'], ":1: field 'instruction' is empty"),
    (['{"instruction": 7}'], ":1: field 'instruction' must be a string, got int"),
    (['["a", "list"]'], ":1: expected a JSON object"),
    (['{"instruction": "a", "instances": {"input": ""}}'], ":1: field 'instances' must be a list"),
    (['{"instruction": "a", "instances": [{"input": 3}]}'], ":1: instance 1: input: Input should be a valid string"),
    (['{"instruction": "a", "is_classification": "yes"}'], ":1: field 'is_classification' must be true or false"),
    (['{"instruction": "a", "id": "x"}', '{"instruction": "b", "id": "x"}'], ":2: seed id 'x' already used on line 1"),
])
def test_bad_seed_file_names_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    f = write_lines(tmp_path / "seeds.jsonl", lines)
    with pytest.raises(SeedFileError) as e:
        load_seed_tasks(f)
    assert str(e.value).startswith(str(f))
    assert message in str(e.value)
    assert isinstance(e.value, FactoryError)  # the CLI prints it as one line and exits 2


def test_missing_and_empty_seed_files(tmp_path: Path) -> None:
    with pytest.raises(SeedFileError, match=r"nope\.jsonl: no such seed task file"):
        load_seed_tasks(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n  \n")
    with pytest.raises(SeedFileError, match=r"empty\.jsonl: the seed task file is empty"):
        load_seed_tasks(tmp_path / "empty.jsonl")
    (tmp_path / "latin1.jsonl").write_bytes('{"instruction": "caf\xe9"}'.encode("latin-1"))
    with pytest.raises(SeedFileError, match=r"latin1\.jsonl: not UTF-8"):
        load_seed_tasks(tmp_path / "latin1.jsonl")


def test_keywords_text_and_jsonl(tmp_path: Path) -> None:
    f = write_lines(tmp_path / "kw.txt", ["# topics for the tutorial", "김치", "", "C#", "김치", "  인공지능  "])
    assert load_keywords(f) == ["김치", "C#", "인공지능"]
    j = write_lines(tmp_path / "kw.jsonl", ['{"keyword": "한옥"}', '{"keyword": "seaweed"}'])
    assert load_keywords(j) == ["한옥", "seaweed"]


def test_bad_keyword_files(tmp_path: Path) -> None:
    with pytest.raises(SeedFileError, match=r"kw\.jsonl:2: missing field 'keyword'"):
        load_keywords(write_lines(tmp_path / "kw.jsonl", ['{"keyword": "a"}', '{"word": "b"}']))
    with pytest.raises(SeedFileError, match=r"only\.txt: no keywords"):
        load_keywords(write_lines(tmp_path / "only.txt", ["# nothing here"]))
    with pytest.raises(SeedFileError, match="no such keyword file"):
        load_keywords(tmp_path / "missing.txt")


def test_eval_items(tmp_path: Path) -> None:
    f = write_lines(tmp_path / "q.jsonl", [
        json.dumps({"question_id": 81, "category": "writing", "turns": ["Write a travel blog post.", "Rewrite it."]}),
        json.dumps({"id": "k1", "question": "한국의 수도는?"}),
        json.dumps({"instruction": "Summarize.", "input": "Long text."}),
    ])
    assert load_eval_items(f) == [
        ("81", "Write a travel blog post."), ("81#2", "Rewrite it."), ("k1", "한국의 수도는?"),
        ("eval-3", "Summarize.\n\nLong text."),
    ]
    bad = write_lines(tmp_path / "bad.jsonl", ['{"question_id": 1, "turns": []}'])
    with pytest.raises(SeedFileError, match=r"bad\.jsonl:1: not a valid question: turns"):
        load_eval_items(bad)
