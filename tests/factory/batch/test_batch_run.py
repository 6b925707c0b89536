"""`run_batch` against the simulator's Batch API: resubmission, expiry, kills, cost, splitting."""

import asyncio
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from batch_fakes import (
    MODEL,
    ROOT,
    Killed,
    KillingClient,
    assert_each_once,
    file_keys,
    go,
    make_requests,
    sim_stats,
    wait_until_finished,
)

from factory.batch import (
    BatchBudgetError,
    BatchFailedError,
    BatchSettings,
    batch_client,
    cancel_open_batches,
)
from factory.batch.files import input_line
from factory.batch.ledger import BatchLedger
from factory.engine import ChatRequest
from factory.errors import PriceUnknownError
from factory.engine.ledger import Ledger
from factory.engine.pricing import PriceTable
from factory.engine.settings import EngineSettings
from factory.engine.tokens import estimate_input
from factory.simulator import SimConfig, run_simulator
from factory.simulator.batch_config import BatchSimConfig

def test_only_failed_lines_are_resubmitted_and_every_request_comes_back_once(ledger):
    requests = make_requests(12)
    failing = {requests[i].key for i in (1, 5, 9)}
    with run_simulator(SimConfig(seed=1), BatchSimConfig(seconds=0.1, fail_custom_ids=frozenset(failing))) as url:
        stats, results = go(url, ledger, requests)
        first, second = ledger.batches()
        resubmitted = file_keys(url, second["input_file_id"])
        sim = sim_stats(url)
    assert_each_once(requests, results)
    assert set(resubmitted) == failing and len(resubmitted) == 3
    assert sim["submitted"] == 2 and sim["lines"] == 15
    assert (stats.done, stats.failed, stats.submitted, stats.resubmitted, stats.batches_created) == (12, 0, 15, 3, 2)
    assert ledger.count_by_status() == {"pending": 0, "done": 12, "failed": 0}
    assert {c.key: c.attempts for c in ledger.calls()} == {r.key: 2 if r.key in failing else 1 for r in requests}
    assert all(c.batch and c.batch_id == second["batch_id"] for c in ledger.calls() if c.key in failing)


def test_an_expired_batch_keeps_its_finished_lines_and_resubmits_the_rest(ledger):
    requests = make_requests(10)
    with run_simulator(SimConfig(seed=2), BatchSimConfig(seconds=0.1, expire_first=1, expire_share=0.5)) as url:
        stats, results = go(url, ledger, requests)
        first, second = ledger.batches()
        finished = {json.loads(line)["custom_id"]: json.loads(line)["response"]["body"]["choices"][0]["message"]["content"]
                    for line in httpx.get(f"{url}/files/{first['output_file_id']}/content").text.splitlines()}
        resubmitted = file_keys(url, second["input_file_id"])
    assert first["status"] == "expired" and second["status"] == "completed"
    assert len(finished) == 5 and set(resubmitted) == {r.key for r in requests} - set(finished)
    assert_each_once(requests, results)
    by_key = {r.request.key: r for r in results}
    assert all(by_key[k].content == content and by_key[k].call.batch_id == first["batch_id"] for k, content in finished.items())
    assert stats.resubmitted == 5 and stats.done == 10


CHILD = """
import asyncio, io, json, sys
from factory.batch import BatchSettings, batch_client, run_batch
from factory.engine import ChatRequest
from factory.engine.ledger import Ledger
from factory.engine.settings import EngineSettings
from factory.engine.tokens import estimate_input

url, run_dir, spec = sys.argv[1], sys.argv[2], sys.argv[3]
requests = [ChatRequest(*item) for item in json.loads(open(spec).read())]
settings = EngineSettings(base_url=url)

async def main():
    async with batch_client(settings, api_key="sk-test") as client:
        await run_batch(requests, lambda r: None, ledger=Ledger.for_run(run_dir), settings=settings, client=client,
                        batch=BatchSettings(poll_initial_s=0.05, poll_max_s=0.05), progress=io.StringIO())

asyncio.run(main())
"""


def test_a_process_killed_after_submission_is_attached_to_on_rerun_and_never_submits_twice(tmp_path):
    requests = make_requests(8)
    spec = tmp_path / "requests.json"
    spec.write_text(json.dumps([[r.stage, r.model, r.messages, r.params] for r in requests]))
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with run_simulator(SimConfig(seed=3), BatchSimConfig(seconds=1.5)) as url:
        child = subprocess.Popen([sys.executable, "-c", CHILD, url, str(run_dir), str(spec)], env=env, cwd=ROOT)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and child.poll() is None:
                if (run_dir / "ledger.sqlite").exists():
                    db = sqlite3.connect(run_dir / "ledger.sqlite")
                    try:
                        pending = db.execute("SELECT COUNT(*) FROM requests WHERE status = 'pending' AND batch_id IS NOT NULL").fetchone()[0]
                    except sqlite3.OperationalError:  # tables not created yet
                        pending = 0
                    db.close()
                    if pending == len(requests):
                        break
                time.sleep(0.01)
            assert child.poll() is None, "the child ended before its batch was recorded"
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait(10)
        assert child.returncode == -signal.SIGKILL
        assert sim_stats(url)["submitted"] == 1
        with Ledger.for_run(run_dir) as ledger:
            assert ledger.count_by_status()["done"] == 0  # killed before anything was collected
            stats, results = go(url, ledger, requests)
            assert ledger.count_by_status() == {"pending": 0, "done": 8, "failed": 0}
        sim = sim_stats(url)
    assert sim["submitted"] == 1 and sim["files_uploaded"] == 1
    assert stats.batches_attached == 1 and stats.batches_created == 0 and stats.submitted == 0
    assert_each_once(requests, results)


def test_a_kill_between_upload_and_create_is_recovered_from_the_uploaded_file(ledger):
    requests = make_requests(5)
    with run_simulator(SimConfig(seed=4), BatchSimConfig(seconds=0.1)) as url:
        with pytest.raises(Killed):
            go(url, ledger, requests, wrap=lambda c: KillingClient(c, "killed before create"))
        with BatchLedger(ledger) as books:
            (orphan,) = books.open_files()
        assert orphan.batch_id is None and sim_stats(url)["submitted"] == 0
        stats, results = go(url, ledger, requests)
        sim = sim_stats(url)
        (batch,) = ledger.batches()
    assert sim["files_uploaded"] == 1 and sim["submitted"] == 1  # the same file, never uploaded again
    assert batch["input_file_id"] == orphan.file_id
    assert_each_once(requests, results)


def test_a_lost_answer_to_create_finds_the_batch_instead_of_creating_another(ledger):
    requests = make_requests(5)
    with run_simulator(SimConfig(seed=5), BatchSimConfig(seconds=0.1)) as url:
        stats, results = go(url, ledger, requests, wrap=lambda c: KillingClient(c, "answer lost"))
        sim = sim_stats(url)
    assert sim["submitted"] == 1 and stats.batches_created == 1
    assert_each_once(requests, results)


def test_recorded_cost_is_the_batch_price_times_the_usage_to_the_cent(ledger):
    # A long shared system prompt: the simulator reports cached tokens for it; gpt-5 models
    # report reasoning tokens. Both must be priced as the price table says for the Batch API.
    system = " ".join(f"rule{i} applies." for i in range(900))
    requests = [ChatRequest("answers", "gpt-5-mini", [{"role": "system", "content": system},
                                                      {"role": "user", "content": f"Question {i}?"}],
                            {"max_tokens": 300, "seed": 1}) for i in range(30)]
    with run_simulator(SimConfig(seed=6), BatchSimConfig(seconds=0.1)) as url:
        stats, results = go(url, ledger, requests)
        (batch,) = ledger.batches()
        got = httpx.get(f"{url}/files/{batch['output_file_id']}/content", timeout=30)
        assert got.status_code == 200, got.text[:500]
        lines = got.text.splitlines()
    price = PriceTable.load().lookup("gpt-5-mini")
    assert price.batch_input == price.input / 2 and price.batch_output == price.output / 2
    usages = [json.loads(line)["response"]["body"]["usage"] for line in lines]
    cached = sum(u["prompt_tokens_details"]["cached_tokens"] for u in usages)
    prompt = sum(u["prompt_tokens"] for u in usages)
    completion = sum(u["completion_tokens"] for u in usages)
    assert cached > 0 and sum(u["completion_tokens_details"]["reasoning_tokens"] for u in usages) > 0
    expected = ((prompt - cached) * price.batch_input + cached * price.batch_cached_input
                + completion * price.batch_output) / 1_000_000
    recorded = ledger.spent_usd("answers")
    assert round(recorded, 2) == round(expected, 2) and recorded == pytest.approx(expected, abs=1e-9)
    assert stats.cost_usd == pytest.approx(expected, abs=1e-9)
    assert sum(r.call.cost_usd for r in results) == pytest.approx(expected, abs=1e-9)
    (totals,) = ledger.totals_by_stage_model()
    assert (totals.usage.input_tokens, totals.usage.cached_input_tokens, totals.usage.output_tokens) == (prompt, cached, completion)


def test_a_run_over_the_split_limits_makes_several_batches_and_merges_them(ledger):
    requests = make_requests(10, text="Explain topic {i} " + "in great detail " * 30)
    size = len(input_line(requests[0]))
    by_count = BatchSettings(max_requests_per_file=4, poll_initial_s=0.02, poll_max_s=0.05)
    by_bytes = BatchSettings(max_file_bytes=3 * size + size // 2, poll_initial_s=0.02, poll_max_s=0.05)
    with run_simulator(SimConfig(seed=7), BatchSimConfig(seconds=0.1)) as url:
        stats, results = go(url, ledger, requests, batch=by_count)
        sizes = [len(file_keys(url, b["input_file_id"])) for b in ledger.batches()]
        assert_each_once(requests, results)
        assert sizes == [4, 4, 2] and stats.batches_created == 3 and sim_stats(url)["submitted"] == 3
        more = make_requests(10, text="Describe place {i} " + "with many words " * 30)
        stats, results = go(url, ledger, more, batch=by_bytes)
        sizes = [len(file_keys(url, b["input_file_id"])) for b in ledger.batches()[3:]]
    assert sizes == [3, 3, 3, 1] and stats.batches_created == 4
    assert_each_once(more, results)


def test_max_cost_submits_what_fits_and_refuses_before_any_upload_when_not_one_request_fits(ledger):
    requests = make_requests(50, max_tokens=1000)
    price = PriceTable.load().lookup(MODEL)
    each = [(estimate_input(r.model, r.messages, r.params).tokens * price.batch_input + 1000 * price.batch_output) / 1e6
            for r in requests]
    budget = sum(each) * 0.99
    fits = max(n for n in range(51) if sum(each[:n]) <= budget)
    assert 0 < fits < 50
    with run_simulator(SimConfig(), BatchSimConfig(seconds=0.1)) as url:
        # 0.00005 is shown as given, and the refusal says by how much one request is over it.
        by = f"{each[0] - 0.00005:.10f}".rstrip("0")
        with pytest.raises(BatchBudgetError, match=rf"--max-cost \$0\.00005 \(covering stage answers\) is smaller than the "
                                                   rf"worst case of one request, .* by \${by}: .*nothing was submitted"):
            go(url, ledger, requests, max_cost=0.00005)
        with pytest.raises(PriceUnknownError, match="no price known"):
            go(url, ledger, make_requests(2, model="my-local-model"), max_cost=1.0)
        sim = sim_stats(url)
        stats, results = go(url, ledger, requests, max_cost=budget)
        left = sim_stats(url)
    assert sim["files_uploaded"] == 0 and sim["submitted"] == 0
    assert (stats.done, stats.left_over, stats.stopped_reason, left["lines"]) == (fits, 50 - fits, "budget", fits)
    assert f"submitted {fits} of 50 requests: the other {50 - fits} do not fit" in stats.budget_note
    assert stats.budget_note in stats.summary()
    assert 0 < ledger.spent_usd() <= budget


def test_wait_no_submits_and_returns_and_a_rerun_collects(ledger):
    requests = make_requests(6)
    with run_simulator(SimConfig(seed=8), BatchSimConfig(seconds=0.3)) as url:
        first, none_yet = go(url, ledger, requests, wait=False)
        assert (first.pending, first.done, first.batches_created, none_yet) == (6, 0, 1, [])
        assert ledger.count_by_status() == {"pending": 6, "done": 0, "failed": 0}
        wait_until_finished(url, ledger.batches()[0]["batch_id"])
        second, results = go(url, ledger, requests, wait=False)
        third, cached = go(url, ledger, requests)
        sim = sim_stats(url)
    assert (second.batches_attached, second.done, second.pending, second.submitted) == (1, 6, 0, 0)
    assert_each_once(requests, results)
    assert third.cached == 6 and third.submitted == 0 and all(r.cached for r in cached)
    assert sim["submitted"] == 1


def test_a_cancelled_batch_is_collected_and_its_unfinished_requests_go_again(ledger):
    requests = make_requests(6)
    with run_simulator(SimConfig(seed=9), BatchSimConfig(seconds=0.5)) as url:
        go(url, ledger, requests, wait=False)

        async def cancel():
            async with batch_client(EngineSettings(base_url=url), api_key="sk-test") as client:
                return await cancel_open_batches(ledger, client)

        cancelled = asyncio.run(cancel())
        stats, results = go(url, ledger, requests)
        sim = sim_stats(url)
        first = ledger.batches()[0]
        kept = file_keys(url, first["output_file_id"]) if first["output_file_id"] else []
        not_run = file_keys(url, first["error_file_id"])
    assert len(cancelled) == 1 and sim["cancelled"] == 1 and sim["submitted"] == 2
    assert first["status"] == "cancelled" and len(not_run) >= 1 and len(kept) + len(not_run) == 6
    assert stats.resubmitted == len(not_run)
    assert_each_once(requests, results)
    assert all(r.call.batch_id == first["batch_id"] for r in results if r.request.key in kept)


def test_a_refused_line_is_final_and_a_line_that_keeps_failing_gives_up_after_max_attempts(ledger):
    good = make_requests(3)
    refused = ChatRequest("answers", MODEL, [{"role": "user", "content": "no hint"}],
                          {"max_tokens": 20, "response_format": {"type": "json_object"}})
    broken = ChatRequest("answers", MODEL, [{"role": "user", "content": "x [[sim-fault:500]]"}], {"max_tokens": 20})
    with run_simulator(SimConfig(), BatchSimConfig(seconds=0.05)) as url:
        stats, results = go(url, ledger, [*good, refused, broken], max_attempts=3)
        sim = sim_stats(url)
    by_key = {r.request.key: r for r in results}
    assert len(results) == 5 and all(by_key[r.key].ok for r in good)
    assert not by_key[refused.key].ok and "HTTP 400" in by_key[refused.key].call.error
    assert by_key[refused.key].call.attempts == 1
    assert "gave up after 3 batch attempts" in by_key[broken.key].call.error
    assert ledger.get(broken.key).attempts == 3 and ledger.get(broken.key).status == "failed"
    assert sim["submitted"] == 3 and stats.failed == 2 and stats.done == 3
    assert stats.cost_usd == pytest.approx(ledger.spent_usd(), abs=1e-12)


def test_a_whole_batch_refused_by_the_api_stops_with_its_reason(ledger):
    with run_simulator(SimConfig(), BatchSimConfig(seconds=0.05, max_requests=2)) as url:
        with pytest.raises(BatchFailedError, match="too_many_requests"):
            go(url, ledger, make_requests(3))
    assert ledger.count_by_status()["done"] == 0


def test_stages_run_one_after_another_with_the_first_stages_answers(ledger):
    with run_simulator(SimConfig(seed=10), BatchSimConfig(seconds=0.05)) as url:
        _, questions = go(url, ledger, make_requests(4, stage="questions", text="Write a question about {i}."))
        answers = [ChatRequest("answers", MODEL, [{"role": "user", "content": q.content}], {"max_tokens": 30})
                   for q in questions]
        _, results = go(url, ledger, answers)
    assert_each_once(answers, results)
    assert [b["stage"] for b in ledger.batches()] == ["questions", "answers"]
    assert ledger.count_by_status("questions")["done"] == 4 and ledger.count_by_status("answers")["done"] == 4


def test_progress_shows_the_states_and_duplicates_are_sent_once(ledger):
    requests = make_requests(4)
    shown = io.StringIO()
    with run_simulator(SimConfig(), BatchSimConfig(seconds=0.3)) as url:
        stats, results = go(url, ledger, requests + requests[:2], progress=shown)
    text = shown.getvalue()
    assert "validating" in text and "in_progress" in text and "4/4 done" in text.splitlines()[-1]
    assert stats.duplicates == 2 and len(results) == 4 and stats.submitted == 4


def test_batch_settings_come_from_the_batch_section_and_flags(tmp_path):
    import argparse

    from factory.batch import add_batch_arguments, batch_settings_from_args
    from factory.errors import SettingsError

    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path)
    add_batch_arguments(parser)
    config = tmp_path / "f.toml"
    config.write_text("[engine]\nmodel = 'gpt-4o-mini'\n[batch]\nmax_requests_per_file = 100\n")
    got = batch_settings_from_args(parser.parse_args(["--config", str(config), "--batch", "--batch-wait", "no"]))
    assert got.max_requests_per_file == 100 and got.wait is False
    flat = tmp_path / "flat.toml"
    flat.write_text("model = 'gpt-4o-mini'\n")
    assert batch_settings_from_args(parser.parse_args(["--config", str(flat)])) == BatchSettings()
    with pytest.raises(SettingsError, match="max_requests_per_file"):
        batch_settings_from_args(parser.parse_args(["--batch-max-requests", "60000"]))
    with pytest.raises(SettingsError, match="poll_max_s"):
        batch_settings_from_args(parser.parse_args(["--batch-poll", "10", "--batch-poll-max", "1"]))


def test_a_batch_refused_for_the_enqueued_token_limit_goes_again_once_the_queue_empties(ledger):
    requests = make_requests(10)
    one_file = sum(_prompt_tokens(input_line(r)) for r in requests[:5])
    batch = BatchSettings(max_requests_per_file=5, poll_initial_s=0.02, poll_max_s=0.05)
    with run_simulator(SimConfig(seed=11), BatchSimConfig(seconds=0.3, enqueued_token_limit=one_file * 3 // 2)) as url:
        stats, results = go(url, ledger, requests, batch=batch)
        sim = sim_stats(url)
    statuses = [b["status"] for b in ledger.batches()]
    assert statuses == ["completed", "failed", "completed"] and sim["validation_failed"] == 1
    assert_each_once(requests, results)
    assert stats.resubmitted == 5 and stats.failed == 0


def _prompt_tokens(line: bytes) -> int:
    from factory.simulator.batch_lines import prompt_tokens as count

    return count(json.loads(line)["body"])


def test_no_requests_submit_nothing(ledger):
    with run_simulator(SimConfig(), BatchSimConfig(seconds=0.05)) as url:
        stats, results = go(url, ledger, [])
        sim = sim_stats(url)
    assert results == [] and stats.submitted == 0 and sim["files_uploaded"] == 0
