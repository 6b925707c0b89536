"""Curation killed with -9 mid-run, then rerun: nothing is paid or written twice; the Batch API
path at batch prices; and the report's side-by-side of a trained selection against its source."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from judge_fakes import ROOT
from test_curate import JUDGE, make_run, scores
from test_grade_support import clean_env, sim_stats, wait_for_lines  # noqa: F401  (fixture)

from factory.engine import Ledger, PriceTable
from factory.simulator import SimConfig, run_simulator
from factory.simulator.batches import BatchSimConfig
from judge.__main__ import main
from judge.reports.overview import write_overview
from schemas import RunFolder

pytestmark = pytest.mark.usefixtures("clean_env")
HANG_ONCE = "[[sim-fault:hang*1]]"  # the simulator holds the first attempt of the request that shows it


def args(run: RunFolder, url: str, *extra: str) -> list[str]:
    return ["curate", "--run", str(run.root), "--judge-model", JUDGE, "--base-url", url, "--no-progress", *extra]


def test_kill_9_and_rerun_grades_only_what_is_missing(tmp_path: Path, capsys) -> None:
    run = make_run(tmp_path / "runs" / "k", n=10)
    lines = run.examples.read_text(encoding="utf-8").splitlines()
    last = json.loads(lines[-1])
    last["output"] += " " + HANG_ONCE
    lines[-1] = json.dumps(last, ensure_ascii=False)
    run.examples.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = run.curation_scores(f"{JUDGE}-v1")
    with run_simulator(SimConfig(seed=7)) as url:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "sk-test"}
        cmd = [sys.executable, "-m", "judge", *args(run, url, "--timeout", "120", "--max-concurrency", "4")]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_lines(path, 9, proc)
            time.sleep(0.2)  # still held on the last example
            assert proc.poll() is None
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert len(scores(run)) == 9 and not (tmp_path / "runs" / f"k-{JUDGE}-v1-min4.5").exists()
        asked = sim_stats(url)["chat_completions"]
        assert asked == 10 + 1  # and the structured-output probe
        assert main(args(run, url)) == 0
        assert sim_stats(url)["chat_completions"] == asked + 1  # the held one, nothing else
    out = capsys.readouterr().out
    assert "10 examples (9 graded before)" in out and "graded now: 1 (1 scored" in out
    got = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(got) == 10 and len({g["example_id"] for g in got}) == 10
    with Ledger.for_run(run.root) as ledger:
        calls = list(ledger.calls(stage="curate"))
        assert len(calls) == 10 and ledger.spent_usd("curate") == pytest.approx(sum(g["cost_usd"] for g in got))


def test_through_the_batch_api_at_batch_prices(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs" / "b", n=6)
    fast = ["--batch", "--batch-poll", "0.02", "--batch-poll-max", "0.05"]
    with run_simulator(SimConfig(seed=9), BatchSimConfig(seconds=0.2)) as url:
        assert main(args(run, url, *fast)) == 0
        assert main(args(run, url, *fast)) == 0
        assert sim_stats(url)["batches"]["submitted"] == 1  # the rerun submits none
    assert len(scores(run)) == 6
    price = PriceTable.load().lookup(JUDGE)
    with Ledger.for_run(run.root) as ledger:
        calls = list(ledger.calls(stage="curate"))
    assert len(calls) == 6 and all(c.batch for c in calls)
    assert all(c.cost_usd == pytest.approx(price.cost(c.usage, batch=True)) for c in calls)


def _judgments(run: RunFolder, scores_of: list[int]) -> None:
    run.judgments.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"question_id": f"q{i}", "mode": "single", "turn": 1, "model": "lora", "judge_model": JUDGE,
             "status": "scored", "score": s, "rationale": "", "request_keys": [], "cost_usd": 0.001}
            for i, s in enumerate(scores_of)]
    run.judgments.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_the_report_sets_a_trained_selection_beside_its_source(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs" / "s", n=9)
    with run_simulator(SimConfig(seed=2)) as url:
        assert main(args(run, url, "--keep-min-score", "2")) == 0
    (selection,) = [p for p in (tmp_path / "runs").iterdir() if p.name.startswith("s-")]
    before = [4, 5, 6, 5, 4, 6, 5, 5]
    after = [6, 7, 7, 6, 6, 8, 7, 7]
    _judgments(run, before)
    _judgments(RunFolder(selection), after)
    out = write_overview(run.root)
    (c,) = out.summary["curation"]
    (s,) = c["selections"]
    (row,) = s["compared"]
    assert row["label"] == "lora" and row["uncurated"]["value"] == pytest.approx(sum(before) / 8)
    assert row["points_gained"] == pytest.approx((sum(after) - sum(before)) / 8)
    assert row["curated"]["low"] < row["curated"]["value"] < row["curated"]["high"]
    assert row["usd_per_point"] == pytest.approx(c["cost_usd"] / row["points_gained"])
    assert "points gained" in out.index_html.read_text()
