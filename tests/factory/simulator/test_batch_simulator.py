"""The simulator's Batch API (/v1/files, /v1/batches) through the `openai` client and raw HTTP."""

import json
import time

import httpx
import openai
import pytest

from factory.simulator import SimConfig, SimConfigError, run_simulator
from factory.simulator.batch_config import BatchSimConfig
from factory.simulator.multipart import parse_multipart
from factory.simulator.errors import InvalidRequest

MODEL = "gpt-4o-mini"


def line(custom_id: str, text: str, model: str = MODEL, **body) -> dict:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 20, **body}}


def jsonl(lines: list[dict]) -> bytes:
    return "".join(json.dumps(x) + "\n" for x in lines).encode()


def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=10)


def sim_stats(base_url: str) -> dict:
    return httpx.get(base_url.removesuffix("/v1") + "/sim/stats").json()["batches"]


def submit(c: openai.OpenAI, lines: list[dict]):
    f = c.files.create(file=("input.jsonl", jsonl(lines)), purpose="batch")
    return c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")


def wait_done(c: openai.OpenAI, batch_id: str, timeout_s: float = 5.0):
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        b = c.batches.retrieve(batch_id)
        if not seen or seen[-1] != b.status:
            seen.append(b.status)
        if b.status in ("completed", "failed", "expired", "cancelled"):
            return b, seen
        time.sleep(0.01)
    raise AssertionError(f"batch {batch_id} still {seen[-1]} after {timeout_s}s")


def records(c: openai.OpenAI, file_id: str | None) -> dict[str, dict]:
    if file_id is None:
        return {}
    return {r["custom_id"]: r for r in map(json.loads, c.files.content(file_id).text.splitlines())}


def test_a_batch_goes_through_every_state_and_answers_like_chat_completions():
    lines = [line(f"req-{i}", f"Describe river number {i}.", temperature=0) for i in range(20)]
    with run_simulator(SimConfig(seed=3), BatchSimConfig(seconds=1.0)) as url:
        c = client(url)
        created = submit(c, lines)
        assert created.status == "validating" and created.request_counts.total == 20
        done, seen = wait_done(c, created.id)
        online = c.chat.completions.create(**lines[5]["body"])
        stats = sim_stats(url)
        out = records(c, done.output_file_id)
        again, _ = wait_done(c, submit(c, lines[5:6]).id)
        repeated = records(c, again.output_file_id)["req-5"]["response"]["body"]
    assert seen == ["validating", "in_progress", "finalizing", "completed"]
    assert done.request_counts.completed == 20 and done.request_counts.failed == 0
    assert done.error_file_id is None and done.completed_at is not None and done.model == MODEL
    assert set(out) == {f"req-{i}" for i in range(20)}
    body = out["req-5"]["response"]["body"]
    assert out["req-5"]["response"]["status_code"] == 200
    # Same seed, same line, temperature 0: the same answer; prompt tokens counted as online.
    assert body["choices"][0]["message"]["content"] == repeated["choices"][0]["message"]["content"]
    assert body["usage"]["prompt_tokens"] == online.usage.prompt_tokens
    assert done.usage.output_tokens == sum(r["response"]["body"]["usage"]["completion_tokens"] for r in out.values())
    assert stats["submitted"] == 1 and stats["files_uploaded"] == 1 and stats["lines_ok"] == 20
    assert stats["by_status"] == {"completed": 1}


def test_failed_lines_go_to_the_error_file_and_succeed_when_sent_again():
    lines = [line(f"req-{i}", f"Topic {i}") for i in range(6)] + [line("forced", "Topic x [[sim-fault:503*1]]")]
    with run_simulator(SimConfig(seed=1), BatchSimConfig(seconds=0.1, fail_custom_ids=frozenset({"req-2"}))) as url:
        c = client(url)
        first, _ = wait_done(c, submit(c, lines).id)
        errors, first_out = records(c, first.error_file_id), records(c, first.output_file_id)
        second, _ = wait_done(c, submit(c, [lines[2], lines[6]]).id)
        second_out = records(c, second.output_file_id)
        stats = sim_stats(url)
    assert set(errors) == {"req-2", "forced"}
    assert errors["forced"]["response"]["status_code"] == 503
    assert errors["req-2"]["response"]["status_code"] == 500
    assert len(first_out) == 5
    assert first.request_counts.failed == 2 and first.request_counts.completed == 5
    assert set(second_out) == {"req-2", "forced"} and second.error_file_id is None
    assert stats["submitted"] == 2 and stats["lines_failed"] == 2


def test_fail_rate_fails_about_that_share_of_lines():
    lines = [line(f"req-{i}", f"Topic {i}") for i in range(400)]
    with run_simulator(SimConfig(seed=2), BatchSimConfig(seconds=0.0, fail_rate=0.25)) as url:
        c = client(url)
        b, _ = wait_done(c, submit(c, lines).id)
    assert 60 <= b.request_counts.failed <= 140 and b.request_counts.completed + b.request_counts.failed == 400


def test_an_expired_batch_keeps_its_finished_lines_and_marks_the_rest_expired():
    lines = [line(f"req-{i}", f"Topic {i}") for i in range(10)]
    with run_simulator(SimConfig(seed=1), BatchSimConfig(seconds=0.2, expire_first=1, expire_share=0.3)) as url:
        c = client(url)
        first, seen = wait_done(c, submit(c, lines).id)
        out, errors = records(c, first.output_file_id), records(c, first.error_file_id)
        second, _ = wait_done(c, submit(c, lines).id)
    assert first.status == "expired" and "finalizing" not in seen and first.expired_at is not None
    assert len(out) == 7 and len(errors) == 3 and not set(out) & set(errors)
    assert all(e["error"]["code"] == "batch_expired" and e["response"] is None for e in errors.values())
    assert first.request_counts.completed == 7 and first.request_counts.failed == 3
    assert second.status == "completed"  # only the first batch expires


def test_cancel_keeps_nothing_unfinished_and_says_cancelled():
    lines = [line(f"req-{i}", f"Topic {i}") for i in range(8)]
    with run_simulator(SimConfig(seed=1), BatchSimConfig(seconds=2.0)) as url:
        c = client(url)
        b = submit(c, lines)
        cancelling = c.batches.cancel(b.id)
        assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
        with pytest.raises(openai.BadRequestError):
            c.batches.cancel(b.id)
        done, _ = wait_done(c, b.id)
        stats = sim_stats(url)
        errors = records(c, done.error_file_id)
    assert done.status == "cancelled" and done.output_file_id is None
    assert set(errors) == {f"req-{i}" for i in range(8)}
    assert {e["error"]["code"] for e in errors.values()} == {"batch_cancelled"}
    assert stats["cancelled"] == 1 and stats["lines_cancelled"] == 8


@pytest.mark.parametrize("content, code", [
    (b"", "empty_file"),
    (b"not json\n", "invalid_json_line"),
    (jsonl([line("a", "x"), line("a", "y")]), "duplicate_custom_id"),
    (jsonl([line("a", "x"), line("b", "y", model="gpt-4o")]), "mismatched_model"),
    (jsonl([{**line("a", "x"), "url": "/v1/embeddings"}]), "mismatched_url"),
    (jsonl([line(f"r{i}", "x") for i in range(4)]), "too_many_requests"),
])
def test_a_bad_input_file_fails_validation_with_the_reason(content, code):
    with run_simulator(SimConfig(), BatchSimConfig(seconds=0.05, max_requests=3)) as url:
        c = client(url)
        f = c.files.create(file=("input.jsonl", content), purpose="batch")
        b, seen = wait_done(c, c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                                  completion_window="24h").id)
    assert seen[-1] == "failed" and b.failed_at is not None
    assert code in {e.code for e in b.errors.data}


def test_a_bad_line_body_fails_only_that_line_with_a_400():
    lines = [line("good", "Tell me something."), line("bad", "no hint here", response_format={"type": "json_object"})]
    with run_simulator(SimConfig(), BatchSimConfig(seconds=0.05)) as url:
        c = client(url)
        b, _ = wait_done(c, submit(c, lines).id)
        errors, out = records(c, b.error_file_id), records(c, b.output_file_id)
    assert b.status == "completed"
    assert errors["bad"]["response"]["status_code"] == 400 and "json" in errors["bad"]["response"]["body"]["error"]["message"]
    assert set(out) == {"good"}


def test_files_and_batches_refuse_what_the_api_refuses():
    with run_simulator(SimConfig(api_key="sk-right"), BatchSimConfig(max_file_bytes=2000)) as url:
        c = openai.OpenAI(base_url=url, api_key="sk-right", max_retries=0, timeout=10)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url, api_key="sk-wrong", max_retries=0).files.create(file=("a.jsonl", b"{}"), purpose="batch")
        with pytest.raises(openai.BadRequestError, match="jsonl"):
            c.files.create(file=("a.txt", b"{}\n"), purpose="batch")
        with pytest.raises(openai.BadRequestError, match="too large"):
            c.files.create(file=("a.jsonl", b"x" * 3000), purpose="batch")
        with pytest.raises(openai.NotFoundError):
            c.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")
        with pytest.raises(openai.NotFoundError):
            c.batches.retrieve("batch_nope")
        with pytest.raises(openai.NotFoundError):
            c.files.content("file-nope")
        f = c.files.create(file=("a.jsonl", jsonl([line("a", "x")])), purpose="batch")
        assert c.files.retrieve(f.id).bytes == len(jsonl([line("a", "x")]))
        assert c.files.content(f.id).content == jsonl([line("a", "x")])
        with pytest.raises(openai.BadRequestError, match="endpoint"):
            c.batches.create(input_file_id=f.id, endpoint="/v1/embeddings", completion_window="24h")
        raw = httpx.post(url + "/batches", headers={"authorization": "Bearer sk-right"},
                         json={"input_file_id": f.id, "endpoint": "/v1/chat/completions", "completion_window": "1h"})
        assert raw.status_code == 400 and "24h" in raw.json()["error"]["message"]
        assert sim_stats(url)["submitted"] == 0


def test_list_is_newest_first_and_pages_with_after():
    with run_simulator(SimConfig(), BatchSimConfig(seconds=0.0)) as url:
        c = client(url)
        ids = [submit(c, [line("a", f"x{i}")]).id for i in range(5)]
        first = c.batches.list(limit=2)
        assert [b.id for b in first.data] == ids[::-1][:2] and first.has_more
        assert [b.id for b in c.batches.list(limit=100)] == ids[::-1]
        assert [b.id for b in c.batches.list(limit=2, after=ids[2]).data] == [ids[1], ids[0]]
        assert sim_stats(url)["submitted"] == 5


def test_multipart_parser_reads_fields_and_files_and_rejects_broken_bodies():
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n"
            b"Content-Type: application/jsonl\r\n\r\n{\"a\": 1}\r\n--XyZ\r\n\r\n\r\n--XyZ--\r\n")
    body = body.replace(b"--XyZ\r\n\r\n\r\n", b"")  # keep two parts
    parts = parse_multipart("multipart/form-data; boundary=XyZ", body)
    assert parts["purpose"].data == b"batch" and parts["purpose"].filename is None
    assert parts["file"].data == b"{\"a\": 1}" and parts["file"].filename == "in.jsonl"
    with pytest.raises(InvalidRequest, match="boundary"):
        parse_multipart("multipart/form-data", body)
    with pytest.raises(InvalidRequest, match="cut short"):
        parse_multipart("multipart/form-data; boundary=XyZ", body[:-9])
    with pytest.raises(InvalidRequest, match="multipart/form-data"):
        parse_multipart("application/json", body)


@pytest.mark.parametrize("kwargs", [{"seconds": -1}, {"fail_rate": 1.5}, {"expire_share": -0.1}, {"expire_first": -1},
                                    {"max_requests": 0}])
def test_bad_batch_settings_fail_with_the_setting_named(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(SimConfigError, match=name.split("_")[0]):
        BatchSimConfig(**kwargs)


def test_the_enqueued_token_limit_refuses_a_batch_until_the_earlier_ones_finish():
    lines = [line(f"req-{i}", f"Topic {i}") for i in range(4)]
    with run_simulator(SimConfig(), BatchSimConfig(seconds=0.3, enqueued_token_limit=60)) as url:
        c = client(url)
        first = submit(c, lines)
        refused, _ = wait_done(c, submit(c, lines).id)
        wait_done(c, first.id)
        accepted, _ = wait_done(c, submit(c, lines).id)
    assert refused.status == "failed" and refused.errors.data[0].code == "token_limit_exceeded"
    assert "Limit: 60" in refused.errors.data[0].message
    assert accepted.status == "completed"


def test_the_batch_flags_build_the_batch_config():
    import argparse

    from factory.simulator.batch_config import add_batch_arguments, batch_config_from_args

    parser = argparse.ArgumentParser()
    add_batch_arguments(parser)
    got = batch_config_from_args(parser.parse_args(["--batch-seconds", "0.5", "--batch-fail-rate", "0.1",
                                                    "--batch-expire-rate", "0.2", "--batch-enqueued-tokens", "900"]))
    assert got == BatchSimConfig(seconds=0.5, fail_rate=0.1, expire_rate=0.2, enqueued_token_limit=900)
    assert batch_config_from_args(parser.parse_args([])) == BatchSimConfig()
    with pytest.raises(SimConfigError, match="fail_rate"):
        batch_config_from_args(parser.parse_args(["--batch-fail-rate", "2"]))
