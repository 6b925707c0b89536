"""factory.commands.importer (`python -m factory import`): Alpaca JSON and Q&A JSONL into a run's examples.jsonl."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from schemas import Example, Rejected, read_jsonl

ALPACA = [
    {"instruction": "Give three tips for staying healthy.", "input": "", "output": "Eat well, sleep, move."},
    {"instruction": "Translate the sentence into French.", "input": "Good morning", "output": "Bonjour"},
    {"instruction": "Give three tips for staying healthy!", "input": "", "output": "Sleep more."},  # near-duplicate
    {"instruction": "Describe the image below.", "input": "", "output": "A cat on a sofa."},  # unsupported
    {"instruction": "What is the capital of France?", "input": "", "output": ""},  # empty answer
]


def cli(*argv: str) -> int:
    from factory.__main__ import main

    return main(list(argv))


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_alpaca_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "alpaca_data.json"
    src.write_text(json.dumps(ALPACA))
    run = tmp_path / "runs" / "a"
    assert cli("import", "--run", str(run), "--from", str(src), "--source-model", "text-davinci-003") == 0
    kept = read_jsonl(run / "examples.jsonl", Example)
    assert [e.id for e in kept] == ["alpaca_data-1", "alpaca_data-2"]
    assert kept[1].input == "Good morning" and kept[1].output == "Bonjour"
    assert all(e.provenance.recipe == "import" and e.provenance.model == "text-davinci-003" for e in kept)
    rejected = {r.id: r for r in read_jsonl(run / "rejected.jsonl", Rejected)}
    assert rejected["alpaca_data-3"].reason == "duplicate"
    assert rejected["alpaca_data-3"].detail.startswith("duplicate of alpaca_data-1 (similarity ")
    assert rejected["alpaca_data-4"].reason == "unsupported"
    assert rejected["alpaca_data-5"].reason == "length"
    out = capsys.readouterr().out
    assert "read 5, kept 2" in out and "duplicate 1" in out
    config = tomllib.loads((run / "config.toml").read_text())
    assert config["import"]["source"] == str(src) and config["import"]["dedup_settings"]["threshold"] > 0


def test_qa_jsonl_field_variants(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "qa.jsonl", [
        {"question": "한국의 수도는 어디인가요?", "answer": "서울입니다."},
        {"id": "p7", "prompt": "김치를 담그는 순서를 알려 주세요.", "response": "배추를 절이고, 양념을 바릅니다."},
        {"instruction": "떡볶이의 주재료는 무엇인가요?", "output": "떡과 고추장입니다.", "system": "친절하게 답하세요."},
        {"instruction": "다음 글을 요약해 주세요.", "context": "긴 글입니다.", "response": "짧은 글."},
        {"messages": [{"role": "system", "content": "간단히."}, {"role": "user", "content": "비빔밥은 무엇인가요?"},
                      {"role": "assistant", "content": "밥에 나물을 비벼 먹는 음식입니다."}]},
        {"question": "What is the capital of Korea?", "answer": "Seoul."},  # wrong language for a ko run
    ])
    run = tmp_path / "run"
    assert cli("import", "--run", str(run), "--from", str(src), "--lang", "ko") == 0
    kept = {e.id: e for e in read_jsonl(run / "examples.jsonl", Example)}
    assert list(kept) == ["qa-1", "p7", "qa-3", "qa-4", "qa-5"]
    assert kept["qa-3"].system == "친절하게 답하세요."
    assert kept["qa-4"].input == "긴 글입니다."
    assert kept["qa-5"].instruction == "비빔밥은 무엇인가요?" and kept["qa-5"].system == "간단히."
    assert all(e.lang == "ko" for e in kept.values())
    assert [(r.id, r.reason) for r in read_jsonl(run / "rejected.jsonl", Rejected)] == [("qa-6", "language")]


def test_filters_and_dedup_can_be_switched_off(tmp_path: Path) -> None:
    src = tmp_path / "a.json"
    src.write_text(json.dumps(ALPACA))
    run = tmp_path / "run"
    assert cli("import", "--run", str(run), "--from", str(src), "--no-filter", "--no-dedup") == 0
    assert len(read_jsonl(run / "examples.jsonl", Example)) == 4  # only the empty answer cannot be an Example


def test_rerun_resumes_without_repeating(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "a.json"
    src.write_text(json.dumps(ALPACA[:2]))
    run = tmp_path / "run"
    assert cli("import", "--run", str(run), "--from", str(src)) == 0
    src.write_text(json.dumps(ALPACA))  # the file grew: only the new records are imported
    assert cli("import", "--run", str(run), "--from", str(src)) == 0
    assert "skipped 2" in capsys.readouterr().out.splitlines()[-1]
    assert len(read_jsonl(run / "examples.jsonl", Example)) == 2
    # The restored index still catches a near-duplicate of a record from the first import.
    assert {r.id: r.reason for r in read_jsonl(run / "rejected.jsonl", Rejected)}["a-3"] == "duplicate"


def test_decontamination(tmp_path: Path) -> None:
    src = tmp_path / "a.json"
    src.write_text(json.dumps(ALPACA[:2]))
    questions = write_jsonl(tmp_path / "question.jsonl", [
        {"question_id": 81, "category": "writing", "turns": ["Give three tips for staying healthy, please."]}])
    run = tmp_path / "run"
    assert cli("import", "--run", str(run), "--from", str(src), "--eval", str(questions)) == 0
    (r,) = read_jsonl(run / "rejected.jsonl", Rejected)
    assert (r.id, r.reason) == ("a-1", "contamination")
    assert r.detail.startswith("duplicate of eval question 81 (similarity ")


@pytest.mark.parametrize("content, message", [
    ('{"question": "a", "answer": "b"}\n{"question": "c", "answer": \n', "bad.jsonl:2: not valid JSON"),
    ('{"question": "a"}\n', "bad.jsonl:1: no answer field (output/answer/response/completion); fields present: question"),
    ('{"answer": "a"}\n', "bad.jsonl:1: no instruction field (instruction/question/prompt/query)"),
    ('{"question": 3, "answer": "b"}\n', "bad.jsonl:1: field 'question' must be a string, got int"),
    ('{"id": 1, "question": "a", "answer": "b"}\n{"id": 1, "question": "c", "answer": "d"}\n',
     "bad.jsonl:2: id '1' already used at"),
    (('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, '
     '{"role": "user", "content": "c"}]}\n'), "bad.jsonl:1: only single-turn chats import"),
    ("", "bad.jsonl: the file is empty"),
])
def test_bad_input_fails_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            content: str, message: str) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text(content)
    run = tmp_path / "run"
    assert cli("import", "--run", str(run), "--from", str(src)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (run / "examples.jsonl").exists()  # nothing written before the whole file is read


def test_bad_alpaca_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "a.json"
    src.write_text('[{"instruction": "a", "output": "b"},\n {"instruction": "c" "output": "d"}]')
    assert cli("import", "--run", str(tmp_path / "r"), "--from", str(src)) == 2
    assert "a.json:2: not valid JSON" in capsys.readouterr().err
    src.write_text('[{"instruction": "a", "output": "b"}, "oops"]')
    assert cli("import", "--run", str(tmp_path / "r"), "--from", str(src)) == 2
    assert "a.json: record 2: expected an object, got str" in capsys.readouterr().err


def test_bad_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("import", "--run", str(tmp_path / "r"), "--from", str(tmp_path / "missing.json")) == 2
    assert "no such file" in capsys.readouterr().err
    src = tmp_path / "a.json"
    src.write_text(json.dumps(ALPACA))
    assert cli("import", "--run", str(tmp_path / "r"), "--from", str(src), "--threshold", "1.5") == 2
    assert "--threshold" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
