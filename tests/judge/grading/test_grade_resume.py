"""Kill -9 mid-run, then rerun: only what is missing is graded, nothing is written twice, and the
judge's cost is in the ledger."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from judge_fakes import ROOT
from test_grade_support import (
    clean_env,  # noqa: F401  (fixture)
    grade_args,
    judge_calls,
    judgments,
    make_run,
    pick_questions,
    sim_stats,
    turns_of,
    wait_for_lines,
)

from factory.engine.ledger import Ledger
from factory.simulator import SimConfig, run_simulator
from judge.__main__ import main
from judge.grading.verdicts import judgment_key

pytestmark = pytest.mark.usefixtures("clean_env")

# In the last user message of a request, this makes the simulator hold the first attempt of that
# exact request without an answer: the run is stuck there, with everything else finished.
HANG_ONCE = "[[sim-fault:hang*1]]"


def test_kill_and_rerun_grades_only_what_is_missing(tmp_path: Path, capsys) -> None:
    questions = pick_questions(6, 2)
    n = turns_of(questions)
    last = questions[-1].question_id

    def stall_last_turn(answers: list) -> None:
        # Only the grading of the last question's second turn shows this text (turn 1 does not).
        answer = next(a for a in answers if a.question_id == last)
        answer.turns[1] += " " + HANG_ONCE

    run, qfile = make_run(tmp_path, questions, edit=stall_last_turn)
    out = run / "eval" / "judgments.jsonl"
    with run_simulator(SimConfig(seed=7)) as url:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "judge", *grade_args(run, qfile, url, "--timeout", "120", "--max-concurrency", "4")]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_lines(out, n - 1, proc)
            time.sleep(0.2)  # still stuck on the held request
            assert proc.poll() is None
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert len(judgments(run)) == n - 1
        asked_before = sim_stats(url)["chat_completions"]
        assert asked_before == n + 1  # and the structured-output probe

        assert main(grade_args(run, qfile, url)) == 0
        assert sim_stats(url)["chat_completions"] == asked_before + 1  # the missing one, nothing else
    printed = capsys.readouterr().out
    assert f"{n} items ({n - 1} graded before)" in printed and "graded now: 1 (1 scored" in printed

    got = judgments(run)
    keys = [judgment_key(j) for j in got]
    assert len(got) == n and len(set(keys)) == n and all(j.status == "scored" for j in got)
    assert (got[-1].question_id, got[-1].turn) == (last, 2)

    calls = judge_calls(run)
    assert len(calls) == n and all(c.status == "done" and c.stage == "judge" for c in calls)
    with Ledger.for_run(run) as ledger:
        (judge_row,) = [t for t in ledger.totals_by_stage_model() if t.stage == "judge"]
        assert judge_row.model == "gpt-4o" and judge_row.done == n and judge_row.cost_usd > 0
        assert ledger.spent_usd("judge") == pytest.approx(sum(j.cost_usd for j in got))
