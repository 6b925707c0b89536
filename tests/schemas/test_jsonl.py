import pytest

from schemas import Example, JsonlError, JsonlWriter, Judgment, Question, ReadReport, read_jsonl, write_jsonl


def ex(i: int) -> Example:
    return Example(id=f"e{i}", instruction=f"질문 {i}", output=f"답 {i}")


def test_append_then_read_roundtrip(tmp_path):
    path = tmp_path / "examples.jsonl"
    with JsonlWriter(path) as w:
        w.append(ex(0))
        w.append([ex(1), ex(2)])
    assert [e.id for e in read_jsonl(path, Example)] == ["e0", "e1", "e2"]


def test_torn_last_line_is_dropped_reported_and_cut_before_next_append(tmp_path):
    path = tmp_path / "examples.jsonl"
    write_jsonl(path, [ex(0), ex(1)])
    full = ex(2).model_dump_json().encode()
    with path.open("ab") as f:  # a crash mid-write: half a line, no newline
        f.write(full[: len(full) // 2])

    report = ReadReport(path)
    assert [e.id for e in read_jsonl(path, Example, report)] == ["e0", "e1"]
    assert report.torn_tail and report.torn_bytes == len(full) // 2
    assert "torn" in report.notes[0]

    with JsonlWriter(path) as w:  # the next append must not fuse with the torn half
        w.append(ex(3))
    assert [e.id for e in read_jsonl(path, Example)] == ["e0", "e1", "e3"]


def test_a_bad_line_in_the_middle_names_file_and_line(tmp_path):
    path = tmp_path / "examples.jsonl"
    path.write_text(ex(0).model_dump_json() + "\n{not json\n" + ex(1).model_dump_json() + "\n")
    with pytest.raises(JsonlError, match=r"examples.jsonl:2"):
        read_jsonl(path, Example)


def test_missing_file_reads_as_empty(tmp_path):
    assert read_jsonl(tmp_path / "none.jsonl", Example) == []


def test_mt_bench_question_ids_load_as_strings():
    q = Question.model_validate({"question_id": 81, "category": "writing", "turns": ["a", "b"]})
    assert q.question_id == "81"


def test_unscored_judgment_cannot_carry_a_score():
    with pytest.raises(ValueError):
        Judgment(question_id="1", mode="single", model="m", judge_model="j", status="unscored", score=7)
    with pytest.raises(ValueError):
        Judgment(question_id="1", mode="single", model="m", judge_model="j", status="scored")
