"""`python -m judge compare` through the Batch API and under a budget, against the simulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from compare_fakes import make_runs, some_questions
from test_grade_support import JUDGE, clean_env, sim_stats  # noqa: F401  (fixture)

from factory.engine.ledger import Ledger
from factory.simulator import SimConfig, run_simulator
from factory.simulator.batch_config import BatchSimConfig
from judge.__main__ import main

pytestmark = pytest.mark.usefixtures("clean_env")


def _args(runs: list[Path], tmp: Path, url: str, *extra: str) -> list[str]:
    return ["compare", "--runs", *map(str, runs), "--baseline", "base", "--judge-model", JUDGE,
            "--out", str(tmp / "cmp"), "--questions", str(tmp / "questions.jsonl"), "--base-url", url,
            "--no-progress", "--bootstrap-rounds", "100", *extra]


def test_batch_grading_submits_one_batch_and_a_rerun_submits_none(tmp_path: Path) -> None:
    runs = make_runs(tmp_path, some_questions(3, 1))
    fast = ["--batch", "--batch-poll", "0.02", "--batch-poll-max", "0.05"]
    with run_simulator(SimConfig(seed=4), BatchSimConfig(seconds=0.2)) as url:
        assert main(_args(runs, tmp_path, url, *fast)) == 0
        assert main(_args(runs, tmp_path, url, *fast)) == 0
        assert sim_stats(url)["batches"]["submitted"] == 1
    with Ledger.for_run(tmp_path / "cmp") as ledger:
        calls = list(ledger.calls(stage="judge"))
    assert len(calls) == 2 * 8 * 3 and all(c.batch and c.status == "done" for c in calls)
    data = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert data["grading"]["scored"] == 8 * 3


def test_the_budget_stops_grading_and_the_report_shows_what_is_missing(tmp_path: Path, capsys) -> None:
    runs = make_runs(tmp_path, some_questions(6, 2))
    with run_simulator(SimConfig(seed=4)) as url:
        assert main(_args(runs, tmp_path, url, "--max-cost", "0.01", "--max-concurrency", "2")) == 1
        with Ledger.for_run(tmp_path / "cmp") as ledger:
            spent = ledger.spent_usd()
        assert spent <= 0.01
        data = json.loads((tmp_path / "cmp" / "compare.json").read_text())
        assert data["grading"]["missing"] > 0 and data["grading"]["planned"] == 16 * 3
        assert "rerun the same command to continue" in capsys.readouterr().out
        assert main(_args(runs, tmp_path, url)) == 0  # without the budget the rerun finishes
    data = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert data["grading"]["missing"] == 0 and data["grading"]["scored"] == 16 * 3
