"""The Python API, `judge.grade` and `judge.report`, against the in-process simulator (loopback
only): grading from inside a running event loop, the command's errors, the report's files."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_grade_support import (
    JUDGE,
    clean_env,  # noqa: F401  (fixture)
    grade_args,
    judgments,
    make_run,
    pick_questions,
    sim_stats,
    turns_of,
)

import judge
from factory.errors import SettingsError
from factory.simulator import SimConfig, run_simulator
from judge.__main__ import main
from judge.api import GradeResult, ReportResult
from schemas import UserError

pytestmark = pytest.mark.usefixtures("clean_env")


def test_the_api_names_are_functions_not_modules() -> None:
    import judge.commands.grade  # noqa: F401
    import judge.commands.report  # noqa: F401
    import judge.grading.run  # noqa: F401
    import judge.reports.scores  # noqa: F401

    assert judge.grade.__module__ == judge.report.__module__ == "judge.api"


def test_grade_and_report_inside_a_running_event_loop(tmp_path: Path) -> None:
    questions = pick_questions(3, 2)
    run, qfile = make_run(tmp_path, questions, labels=("lora", "base"))
    n = turns_of(questions)

    async def cell(url: str) -> tuple[GradeResult, GradeResult]:
        single = judge.grade(run, mode="single", judge_model=JUDGE, model="lora", questions=qfile, base_url=url,
                             progress="none")
        pair = await judge.grade_async(run, mode="pair", judge_model=JUDGE, model="lora", baseline="base",
                                       questions=[qfile], base_url=url, max_cost=1.0, progress="none")
        return single, pair

    with run_simulator(SimConfig(seed=4)) as url:
        single, pair = asyncio.run(cell(url))
        served = sim_stats(url)["chat_completions"]
    assert single.status == 0 and single.scored == n and single.unscored == 0 and single.label == "lora"
    assert pair.status == 0 and pair.scored == n and pair.requests == 2 * n, "pair mode asks both orders"
    assert served == single.requests + pair.requests + 1  # and the one structured-output probe of the folder
    assert single.cost_usd is not None and single.cost_usd > 0
    assert "graded now:" in str(single)
    frame = pair.judgments()
    assert frame.height == len(judgments(run)) == 2 * n
    assert sorted(frame["mode"].unique().to_list()) == ["pair", "single"]
    assert frame.filter(frame["mode"] == "single")["score"].is_not_null().all()

    report = judge.report(run)
    assert isinstance(report, ReportResult) and report.index_html.is_file()
    assert report.parts == {"cost": True, "training": False, "scores": True, "curation": False}
    assert report.summary["headline"]["simulated"] is True
    assert {p.name for p in report.charts} >= {"win_rates.png"} and all(p.is_file() for p in report.charts)
    assert "<html" in report.html()


@pytest.mark.parametrize("flags, kwargs", [
    (["--mode", "single"], {"mode": "single"}),  # no judge model
    (["--judge-model", JUDGE], {"judge_model": JUDGE}),  # no mode
    (["--mode", "pair", "--judge-model", JUDGE], {"mode": "pair", "judge_model": JUDGE}),  # pair without baseline
    (["--mode", "single", "--judge-model", JUDGE, "--retries", "99"], {"mode": "single", "judge_model": JUDGE,
                                                                       "retries": 99}),
])
def test_bad_settings_raise_the_commands_errors(tmp_path: Path, capsys, flags: list[str], kwargs: dict) -> None:
    run, qfile = make_run(tmp_path, pick_questions(2))
    assert main(["grade", "--run", str(run), "--questions", str(qfile), *flags]) == 2
    printed = capsys.readouterr().err.strip().removeprefix("error: ")
    with pytest.raises(UserError) as caught:  # the command prints it as one line and exits 2
        judge.grade(run, questions=qfile, **kwargs)
    assert str(caught.value) == printed.replace("(from command line)", "(from the call)")
    assert not (run / "eval" / "judgments.jsonl").exists()


def test_unknown_keywords_are_refused(tmp_path: Path) -> None:
    run, qfile = make_run(tmp_path, pick_questions(2))
    with pytest.raises(SettingsError, match="unknown setting 'judge'"):
        judge.grade(run, mode="single", judge_model=JUDGE, judge="gpt-4o")
    with pytest.raises(judge.OverviewError, match="no run folder"):
        judge.report(tmp_path / "missing")


def test_the_command_and_the_call_grade_the_same(tmp_path: Path, capsys) -> None:
    """The command is a door over the same grading: same judgments for the same answers."""
    questions = pick_questions(2, 1)
    run_a, qfile = make_run(tmp_path / "a", questions)
    run_b, _ = make_run(tmp_path / "b", questions)
    with run_simulator(SimConfig(seed=7)) as url:
        assert main(grade_args(run_a, qfile, url)) == 0
        judge.grade(run_b, mode="single", judge_model=JUDGE, questions=qfile, base_url=url, progress="none")
    # judgments.jsonl is appended in the order the replies finish (so a kill loses nothing written):
    # the same judgments, in whatever order
    strip = sorted((j.question_id, j.turn, j.score, j.rationale) for j in judgments(run_a))
    assert strip == sorted((j.question_id, j.turn, j.score, j.rationale) for j in judgments(run_b))
