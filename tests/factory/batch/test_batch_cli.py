"""`python -m factory batch`: submit, exit, rerun to collect; status; cancel; clear errors."""

import json

import httpx

from factory.__main__ import main
from factory.simulator import SimConfig, run_simulator
from factory.simulator.batch_config import BatchSimConfig
from schemas import LLMCall, read_jsonl

FAST = ["--batch-poll", "0.02", "--batch-poll-max", "0.05", "--no-progress"]


def write_input(path, n: int) -> None:
    lines = [{"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Topic {i}"}], "max_tokens": 20}}
             for i in range(n)]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_submit_and_exit_then_rerun_collects_into_responses(tmp_path, capsys):
    requests = tmp_path / "requests.jsonl"
    write_input(requests, 5)
    run = tmp_path / "run"
    with run_simulator(SimConfig(seed=1), BatchSimConfig(seconds=0.3)) as url:
        common = ["batch", "--run", str(run), "--base-url", url, *FAST]
        assert main([*common, "--input", str(requests), "--batch-wait", "no"]) == 0
        assert "5 requests are in batches on the server" in capsys.readouterr().err
        assert main([*common, "--status"]) == 0
        assert "(to collect)" in capsys.readouterr().out
        assert main([*common, "--input", str(requests)]) == 0
        assert main([*common, "--input", str(requests)]) == 0  # a third run: all cached, nothing new
        assert main([*common, "--status"]) == 0
        status = capsys.readouterr().out
        submitted = httpx.get(url.removesuffix("/v1") + "/sim/stats").json()["batches"]["submitted"]
    responses = read_jsonl(run / "responses.jsonl", LLMCall)
    assert sorted(r.custom_id for r in responses) == [f"q{i}" for i in range(5)]
    assert all(r.status == "done" and r.batch and r.content for r in responses)
    assert "completed" in status and "(collected)" in status and submitted == 1
    config = (run / "config.toml").read_text()
    assert "[batch]" in config and "poll_initial_s = 0.02" in config


def test_cancel_and_errors_a_user_can_fix(tmp_path, capsys):
    requests = tmp_path / "requests.jsonl"
    write_input(requests, 3)
    run = tmp_path / "run"
    with run_simulator(SimConfig(), BatchSimConfig(seconds=5)) as url:
        common = ["batch", "--run", str(run), "--base-url", url, *FAST]
        assert main([*common, "--input", str(requests), "--max-cost", "0.000001"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --max-cost") and "nothing was submitted" in err and "Traceback" not in err
        assert main([*common]) == 2 and "give --input" in capsys.readouterr().err
        assert main([*common, "--input", str(requests), "--batch-max-requests", "0"]) == 2
        assert "max_requests_per_file" in capsys.readouterr().err
        assert main([*common, "--input", str(requests), "--batch-wait", "no"]) == 0
        assert main([*common, "--cancel"]) == 0
        assert "cancelled 1 batches" in capsys.readouterr().err
        stats = httpx.get(url.removesuffix("/v1") + "/sim/stats").json()["batches"]
    assert stats["cancelled"] == 1 and stats["submitted"] == 1
