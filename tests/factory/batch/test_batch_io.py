"""Batch input files (lines, splitting) and reading output/error lines; the batch bookkeeping tables."""

import json
import sqlite3

import pytest

from factory.batch.files import input_line, read_line, read_lines, request_body, split_into_files
from factory.batch.ledger import BatchLedger
from factory.engine import ChatRequest
from factory.errors import RequestError
from factory.engine.ledger import Ledger


def req(text: str, model: str = "gpt-4o-mini", **params) -> ChatRequest:
    return ChatRequest("answers", model, [{"role": "user", "content": text}], {"max_tokens": 10, **params})


def test_an_input_line_carries_the_ledger_key_and_the_online_body():
    r = req("안녕하세요", temperature=0.5, response_format={"type": "json_object"})
    line = json.loads(input_line(r))
    assert line == {"custom_id": r.key, "method": "POST", "url": "/v1/chat/completions", "body": request_body(r)}
    assert line["body"] == {"model": "gpt-4o-mini", "messages": r.messages, "max_tokens": 10, "temperature": 0.5,
                            "response_format": {"type": "json_object"}}
    assert input_line(r).endswith(b"\n") and "안녕하세요".encode() in input_line(r)  # UTF-8, not \u escapes


def test_files_hold_one_model_and_respect_both_limits_in_order():
    a = [req(f"a{i}") for i in range(5)]
    b = [req(f"b{i}", model="gpt-4o") for i in range(3)]
    files = split_into_files(a + b, max_requests=2, max_bytes=10**6)
    assert [(f.model, len(f.requests)) for f in files] == [("gpt-4o-mini", 2), ("gpt-4o-mini", 2), ("gpt-4o-mini", 1),
                                                          ("gpt-4o", 2), ("gpt-4o", 1)]
    assert [k for f in files for k in f.keys] == [r.key for r in a + b]
    assert all(f.data == b"".join(input_line(r) for r in f.requests) for f in files)
    size = len(input_line(a[0]))
    by_bytes = split_into_files(a, max_requests=100, max_bytes=2 * size + 1)
    assert [len(f.requests) for f in by_bytes] == [2, 2, 1] and all(len(f.data) <= 2 * size + 1 for f in by_bytes)
    with pytest.raises(RequestError, match="over the .*-byte file limit"):
        split_into_files(a, max_requests=100, max_bytes=size - 1)


def answer(custom_id: str, content: str | None = "hi", **message) -> dict:
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": content, **message}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 3},
                      "completion_tokens_details": {"reasoning_tokens": 2}}}
    return {"custom_id": custom_id, "response": {"status_code": 200, "body": body}, "error": None}


def failure(custom_id: str, status: int, code: str | None = None) -> dict:
    return {"custom_id": custom_id, "error": None,
            "response": {"status_code": status, "body": {"error": {"message": "nope", "code": code}}}}


def test_an_answer_line_gives_content_finish_reason_and_usage():
    got = read_line(answer("k"))
    assert got.ok and got.content == "hi" and got.finish_reason == "stop" and got.error is None
    assert (got.usage.input_tokens, got.usage.cached_input_tokens, got.usage.output_tokens,
            got.usage.reasoning_tokens) == (11, 3, 7, 2)
    refused = read_line(answer("k", None, refusal="I can't"))
    assert refused.ok and refused.content is None and refused.error == "refusal: I can't"


@pytest.mark.parametrize("item, retryable, says", [
    (failure("k", 500), True, "HTTP 500"),
    (failure("k", 503), True, "HTTP 503"),
    (failure("k", 429, "rate_limit_exceeded"), True, "HTTP 429 rate_limit_exceeded"),
    (failure("k", 400, "invalid_value"), False, "HTTP 400 invalid_value: nope"),
    (failure("k", 404, "model_not_found"), False, "model_not_found"),
    ({"custom_id": "k", "response": None, "error": {"code": "batch_expired", "message": "late"}}, True, "batch_expired"),
    ({"custom_id": "k", "response": None, "error": {"code": "batch_cancelled", "message": "stop"}}, True, "batch_cancelled"),
    ({"custom_id": "k", "response": None, "error": {"code": "invalid_prompt", "message": "no"}}, False, "invalid_prompt"),
    ({"custom_id": "k", "response": {"status_code": 200, "body": {"usage": {"prompt_tokens": 5}}}, "error": None}, True,
     "unreadable answer"),
])
def test_failed_lines_say_what_happened_and_whether_to_send_again(item, retryable, says):
    got = read_line(item)
    assert not got.ok and got.retryable is retryable and says in got.error


def test_a_billed_unreadable_answer_keeps_its_usage_and_unmappable_lines_are_skipped():
    text = "\n".join([json.dumps(answer("a")), "not json", json.dumps({"no": "custom id"}), "",
                      json.dumps({"custom_id": "b", "response": {"status_code": 200, "body": {"usage": {"prompt_tokens": 5}}}})])
    got = read_lines(text)
    assert [g.custom_id for g in got] == ["a", "b"]
    assert got[1].usage.input_tokens == 5 and not got[1].ok


def test_the_batch_tables_track_files_batches_and_collection(tmp_path):
    with Ledger.for_run(tmp_path) as ledger, BatchLedger(ledger) as books:
        books.add_file("file-1", stage="q", model="m", keys=["k1", "k2"], nbytes=100, uploaded_at=1000)
        books.add_file("file-2", stage="a", model="m", keys=["k3"], nbytes=50, uploaded_at=1001)
        assert [f.file_id for f in books.open_files()] == ["file-1", "file-2"]
        assert [f.file_id for f in books.open_files(["a"])] == ["file-2"]
        books.link("file-1", "batch-1")
        assert books.file_of_batch("batch-1").file_id == "file-1" and books.file_of_batch("batch-2") is None
        assert books.keys("file-1") == ["k1", "k2"]
        books.mark_collected("file-1")
        assert [f.file_id for f in books.open_files()] == ["file-2"]
        with pytest.raises(sqlite3.IntegrityError):
            books.add_file("file-2", stage="a", model="m", keys=["k9"], nbytes=1, uploaded_at=1)
        assert books.keys("file-2") == ["k3"]  # the failed insert left nothing behind
    with Ledger.for_run(tmp_path) as ledger, BatchLedger(ledger) as books:  # survives a reopen
        (f,) = books.open_files()
        assert (f.file_id, f.batch_id, f.request_count, f.uploaded_at) == ("file-2", None, 1, 1001)
