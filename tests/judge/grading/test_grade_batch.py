"""`python -m judge grade --batch`: the grading requests through the simulator's Batch API."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_grade_support import (
    clean_env,  # noqa: F401  (fixture)
    grade_args,
    judge_calls,
    judgments,
    make_run,
    pick_questions,
    sim_stats,
    turns_of,
)

from factory.engine.pricing import PriceTable
from factory.simulator import SimConfig, run_simulator
from factory.simulator.batches import BatchSimConfig
from judge.__main__ import main

pytestmark = pytest.mark.usefixtures("clean_env")

FAST = ["--batch", "--batch-poll", "0.02", "--batch-poll-max", "0.05"]


def test_batch_grading_records_batch_prices_and_a_rerun_sends_nothing(tmp_path: Path, capsys) -> None:
    questions = pick_questions(4, 2)
    run, qfile = make_run(tmp_path, questions, labels=("lora", "base"))
    n = turns_of(questions)
    args = grade_args(run, qfile, "", "--model", "lora", "--baseline", "base", *FAST, mode="pair")
    with run_simulator(SimConfig(seed=9), BatchSimConfig(seconds=0.2)) as url:
        args[args.index("--base-url") + 1] = url
        assert main(args) == 0
        assert main(args) == 0
        batches = sim_stats(url)["batches"]
    assert batches["submitted"] == 1  # one batch for both orders of every item; the rerun submits none
    got = judgments(run)
    assert len(got) == n and all(j.status == "scored" and len(j.request_keys) == 2 for j in got)
    calls = judge_calls(run)
    assert len(calls) == 2 * n and all(c.batch and c.status == "done" for c in calls)
    price = PriceTable.load().lookup("gpt-4o")
    for c in calls:
        assert c.cost_usd == pytest.approx(price.cost(c.usage, batch=True)) and c.cost_usd < price.cost(c.usage)
    assert "graded now: 0" in capsys.readouterr().out.split("judge gpt-4o")[-1]


def test_each_attempt_round_is_a_batch_and_unreadable_replies_end_unscored(tmp_path: Path) -> None:
    questions = pick_questions(3)
    run, qfile = make_run(tmp_path, questions)
    n = turns_of(questions)
    args = grade_args(run, qfile, "", "--structured", "no", "--retries", "1", *FAST)
    with run_simulator(SimConfig(seed=9, output_tokens=30), BatchSimConfig(seconds=0.1)) as url:
        args[args.index("--base-url") + 1] = url
        assert main(args) == 0
        assert sim_stats(url)["batches"]["submitted"] == 2  # attempt 0, then the retry round
    got = judgments(run)
    assert len(got) == n and all(j.status == "unscored" and len(j.request_keys) == 2 for j in got)


def test_batch_wait_no_submits_and_a_rerun_collects(tmp_path: Path, capsys) -> None:
    questions = pick_questions(3)
    run, qfile = make_run(tmp_path, questions)
    n = turns_of(questions)
    args = grade_args(run, qfile, "", *FAST)
    with run_simulator(SimConfig(seed=9), BatchSimConfig(seconds=0.3)) as url:
        args[args.index("--base-url") + 1] = url
        assert main([*args, "--batch-wait", "no"]) == 1
        assert "their batches are still running on the server; rerun" in capsys.readouterr().out
        assert not judgments(run)
        assert main(args) == 0
        assert sim_stats(url)["batches"]["submitted"] == 1  # the rerun attached to it, submitted nothing
    assert len(judgments(run)) == n
