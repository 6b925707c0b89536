"""What failed stays visible and nothing paid for is hidden: a later success replaces a failure in
responses.jsonl, final (400-class) failures are not resent unless asked, and the file, the ledger
and the summary agree after every rerun."""

import httpx
from batch_fakes import assert_file_agrees_with_ledger, latest_responses, write_input

from factory.batch.ledger import BatchLedger
from factory.engine.ledger import Ledger
from factory.simulator import SimConfig, run_simulator
from factory.simulator.batch_config import BatchSimConfig

FLAKY = 7  # lines that fail once with a 500, then succeed
REFUSED = 3  # lines the API refuses (400): a json_object response_format without "JSON" in the prompt
GOOD = 10


def texts() -> list[str]:
    return ([f"Explain topic {i}." for i in range(GOOD)]
            + [f"Explain flaky topic {i}. [[sim-fault:500*1]]" for i in range(FLAKY)])


def sim_lines(url: str) -> int:
    return httpx.get(url.removesuffix("/v1") + "/sim/stats").json()["batches"]["lines"]


def test_a_rerun_after_5xx_and_400_failures_fills_the_answers_and_does_not_resend_the_refused(tmp_path, batch_cli, capsys):
    run = tmp_path / "run"
    good = write_input(tmp_path / "requests.jsonl", texts())
    refused = write_input(tmp_path / "refused.jsonl", [f"Name fruit {i}." for i in range(REFUSED)],
                          response_format={"type": "json_object"})
    # One input file, both kinds of line: the refused ones need their own body, so join the files.
    mixed = tmp_path / "mixed.jsonl"
    lines = good.read_text().splitlines() + [line.replace('"q', '"r') for line in refused.read_text().splitlines()]
    mixed.write_text("\n".join(lines) + "\n")
    with run_simulator(SimConfig(seed=3), BatchSimConfig(seconds=0.05)) as url:
        # First run: one attempt per line, so the 500s give up as the 400s do.
        assert batch_cli(url, "--input", str(mixed), "--max-attempts", "1") == 1
        first = capsys.readouterr().err
        latest = assert_file_agrees_with_ledger(run)
        statuses = sorted(c.status for c in latest.values())
        assert statuses.count("failed") == FLAKY + REFUSED and statuses.count("done") == GOOD
        assert f"{REFUSED} final failures" in first and f"{REFUSED} x HTTP 400" in first
        sent = sim_lines(url)

        # Rerun: the 500s go again and succeed; the 400s are given back from the ledger, not resent.
        assert batch_cli(url, "--input", str(mixed)) == 1
        second = capsys.readouterr().err
        latest = assert_file_agrees_with_ledger(run)
        assert sim_lines(url) - sent == FLAKY
        assert sum(c.status == "done" for c in latest.values()) == GOOD + FLAKY
        failed = [c for c in latest.values() if c.status == "failed"]
        assert len(failed) == REFUSED and all("HTTP 400" in c.error for c in failed)
        assert f"{FLAKY} done, 0 failed, {GOOD} cached, {REFUSED} final failures of earlier runs" in second
        assert f"{REFUSED} final failures" in second and f"{REFUSED} x {failed[0].error}" in second
        with Ledger.for_run(run) as ledger:
            assert ledger.count_by_status() == {"pending": 0, "done": GOOD + FLAKY, "failed": REFUSED}
            with BatchLedger(ledger) as books:
                assert set(books.final_failures()) == {c.key for c in failed}

        # --retry-failed sends the refused ones again (and only them); they are refused again.
        sent = sim_lines(url)
        assert batch_cli(url, "--input", str(mixed), "--retry-failed") == 1
        third = capsys.readouterr().err
        assert sim_lines(url) - sent == REFUSED
        assert f"0 done, {REFUSED} failed, {GOOD + FLAKY} cached" in third and f"{REFUSED} x HTTP 400" in third
        assert_file_agrees_with_ledger(run)
        assert batch_cli(url, "--input", str(mixed)) == 1 and sim_lines(url) - sent == REFUSED


def test_send_replaces_a_failure_with_the_later_success(tmp_path, capsys):
    from factory.__main__ import main

    run = tmp_path / "run"
    requests = write_input(tmp_path / "requests.jsonl", texts())
    with run_simulator(SimConfig(seed=4, output_tokens=8)) as url:
        args = ["send", "--run", str(run), "--input", str(requests), "--base-url", url, "--no-progress"]
        assert main([*args, "--max-attempts", "1"]) == 1
        first = latest_responses(run)
        assert sum(c.status == "failed" for c in first.values()) == FLAKY
        assert_file_agrees_with_ledger(run)
        assert main(args) == 0
    latest = assert_file_agrees_with_ledger(run)
    assert all(c.status == "done" and c.content for c in latest.values()) and len(latest) == GOOD + FLAKY
    assert {c.custom_id for c in latest.values()} == {f"q{i}" for i in range(GOOD + FLAKY)}
