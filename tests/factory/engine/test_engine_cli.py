"""`python -m factory send ...`: the engine's command-line path, errors as one line and an exit code."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from factory.__main__ import main
from factory.engine.ledger import Ledger
from schemas import LLMCall, read_jsonl

simulator = pytest.importorskip("factory.simulator")


def _write_requests(path: Path, n: int) -> Path:
    lines = []
    for i in range(n):
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"line {i}"}], "max_tokens": 16}
        # Both accepted forms: a Batch API line, and a bare chat body.
        lines.append({"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body} if i % 2 else body)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


def test_send_answers_a_file_and_a_rerun_adds_nothing(tmp_path, capsys):
    requests = _write_requests(tmp_path / "requests.jsonl", 6)
    run_dir = tmp_path / "run"
    with simulator.run_simulator(simulator.SimConfig(seed=1, output_tokens=8)) as url:
        args = ["send", "--run", str(run_dir), "--input", str(requests), "--base-url", url, "--no-progress"]
        assert main(args) == 0
        assert main(args) == 0
    responses = read_jsonl(run_dir / "responses.jsonl", LLMCall)
    assert len(responses) == 6 and len({r.key for r in responses}) == 6
    assert {getattr(r, "custom_id", None) for r in responses} >= {"req-1", "req-3", "req-5"}
    assert all(r.status == "done" and r.content for r in responses)
    config = tomllib.loads((run_dir / "config.toml").read_text())
    assert config["send"]["base_url"] == url
    assert "0 done, 0 failed, 6 cached" in capsys.readouterr().err


def test_a_bad_key_is_one_line_and_exit_2_with_nothing_done(tmp_path, capsys, monkeypatch):
    requests = _write_requests(tmp_path / "requests.jsonl", 200)
    run_dir = tmp_path / "run"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-12345678")
    with simulator.run_simulator(simulator.SimConfig(api_key="sk-right-key-87654321")) as url:
        code = main(["send", "--run", str(run_dir), "--input", str(requests), "--base-url", url, "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: the API rejected the key (401): set OPENAI_API_KEY")
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "sk-wrong-key-12345678" not in err
    with Ledger.for_run(run_dir) as ledger:
        assert ledger.count_by_status()["done"] == 0


@pytest.mark.parametrize(
    ("extra", "complaint"),
    [
        (["--max-concurrency", "0"], "max_concurrency"),
        (["--base-url", "localhost:8000"], "base_url: Value error, must be an http(s) URL"),
        (["--model", "my-finetune", "--max-cost", "1"], "no price known for model 'my-finetune'"),
    ],
)
def test_a_bad_setting_fails_before_anything_is_sent(tmp_path, capsys, extra, complaint):
    requests = _write_requests(tmp_path / "requests.jsonl", 3)
    code = main(["send", "--run", str(tmp_path / "run"), "--input", str(requests), "--base-url", "http://127.0.0.1:9/v1",
                 "--no-progress", *extra])
    err = capsys.readouterr().err
    assert code == 2 and complaint in err and "Traceback" not in err


def test_a_bad_input_line_is_named(tmp_path, capsys):
    bad = tmp_path / "requests.jsonl"
    bad.write_text('{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}\n')
    assert main(["send", "--run", str(tmp_path / "run"), "--input", str(bad), "--base-url", "http://127.0.0.1:9/v1"]) == 2
    assert "requests.jsonl:1" in capsys.readouterr().err


def test_the_simulate_command_is_registered(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["simulate", "--help"])
    assert exit_.value.code == 0 and "--rpm" in capsys.readouterr().out
