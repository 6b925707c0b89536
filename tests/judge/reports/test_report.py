"""`python -m judge report`: scores.md, charts and summary.json from a graded run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from judge_fakes import ROOT, always_position_a, garbage, load_questions, make_answers, prefers_longer

from judge.__main__ import main
from judge.grading.plan import grade_sync, plan_items
from schemas import JsonlWriter, write_jsonl

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_run(tmp_path: Path, pair_judge, single_judge, n_questions: int = 18) -> Path:
    run = tmp_path / "runs" / "demo"
    questions = load_questions()[:n_questions] + load_questions()[45:45 + n_questions]
    answers = make_answers(questions, "lora", reps=3) + make_answers(questions, "base", reps=1)
    write_jsonl(run / "eval" / "answers.jsonl", answers)
    with JsonlWriter(run / "eval" / "judgments.jsonl") as w:
        for mode, judge in (("single", single_judge), ("reference", single_judge), ("pair", pair_judge)):
            plan = plan_items(questions, answers, mode=mode, model="lora", judge_model="judge-x",
                              baseline="base" if mode == "pair" else None)
            w.append(list(grade_sync(plan.items, judge, retries=1)))
        plan = plan_items(questions, answers, mode="single", model="base", judge_model="judge-x")
        w.append(list(grade_sync(plan.items, single_judge, retries=1)))
    return run


def test_report_of_a_position_biased_judge_shows_ties_and_zero_consistency(tmp_path: Path, capsys) -> None:
    run = make_run(tmp_path, always_position_a, prefers_longer)
    assert main(["report", "--run", str(run), "--resamples", "300"]) == 0
    md = (run / "report" / "scores.md").read_text(encoding="utf-8")
    assert "Position consistency of judge-x: 0%" in md
    summary = json.loads((run / "report" / "summary.json").read_text(encoding="utf-8"))["scores"]
    pair = next(r for r in summary["pair"] if r["category"] == "all")
    assert pair["tie"]["value"] == 1.0 and pair["win"]["value"] == 0.0 and pair["consistency"] == 0.0
    assert summary["position_consistency"] == [{"judge_model": "judge-x", "consistent": 0, "n": pair["total"], "rate": 0.0}]
    assert "wrote" in capsys.readouterr().out


def test_report_tables_charts_and_verbosity(tmp_path: Path) -> None:
    run = make_run(tmp_path, prefers_longer, prefers_longer)
    assert main(["report", "--run", str(run), "--resamples", "300", "--seed", "5"]) == 0
    out = run / "report"
    md = (out / "scores.md").read_text(encoding="utf-8")
    for heading in ("Single-answer grading", "Reference-guided grading", "Pairwise comparison",
                    "Answer length (verbosity)", "Position consistency of judge-x: 100%"):
        assert heading in md
    for chart in ("scores_single.png", "scores_reference.png", "win_rates.png"):
        assert (out / chart).read_bytes()[:8] == PNG_MAGIC
        assert f"]({chart})" in md
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))["scores"]
    assert summary["settings"] == {"bootstrap": "expanded-bca", "resampled": "questions", "resamples": 300,
                                   "confidence": 0.95, "seed": 5}
    overall = {r["model"]: r for r in summary["single"] if r["category"] == "all" and r["turn"] is None}
    assert overall["lora"]["score"]["value"] > overall["base"]["score"]["value"]  # longer answers, higher scores
    assert {r["model"]: r["mean_chars"] for r in summary["verbosity"]}["lora"] > \
        {r["model"]: r["mean_chars"] for r in summary["verbosity"]}["base"]
    categories = {r["category"] for r in summary["single"]}
    assert {"all", "writing", "roleplay"} <= categories


def test_garbage_judge_gives_unscored_rate_not_scores(tmp_path: Path) -> None:
    run = make_run(tmp_path, garbage, garbage, n_questions=4)
    assert main(["report", "--run", str(run), "--resamples", "100"]) == 0
    md = (run / "report" / "scores.md").read_text(encoding="utf-8")
    assert "## Unscored items" in md and "100.0%" in md
    summary = json.loads((run / "report" / "summary.json").read_text(encoding="utf-8"))["scores"]
    assert all(r["score"] is None for r in summary["single"])
    assert all(r["rate"] == 1.0 for r in summary["unscored"])
    assert all(r["win"] is None for r in summary["pair"])
    assert not (run / "report" / "scores_single.png").exists()  # nothing scored, nothing to draw


def test_summary_json_keeps_keys_written_by_other_stages(tmp_path: Path) -> None:
    run = make_run(tmp_path, prefers_longer, prefers_longer, n_questions=2)
    summary = run / "report" / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({"cost": {"total_usd": 1.23}, "scores": {"stale": True}}), encoding="utf-8")
    assert main(["report", "--run", str(run), "--resamples", "50"]) == 0
    data = json.loads(summary.read_text(encoding="utf-8"))
    assert data["cost"] == {"total_usd": 1.23}
    assert "stale" not in data["scores"] and data["scores"]["counts"]["judgments"] > 0


def test_a_rerun_judgment_replaces_the_earlier_unscored_one(tmp_path: Path) -> None:
    run = make_run(tmp_path, garbage, garbage, n_questions=2)
    questions = load_questions()[:2] + load_questions()[45:47]
    answers = make_answers(questions, "lora", reps=3)
    plan = plan_items(questions, answers, mode="single", model="lora", judge_model="judge-x")
    with JsonlWriter(run / "eval" / "judgments.jsonl") as w:
        w.append(list(grade_sync(plan.items, prefers_longer)))
    assert main(["report", "--run", str(run), "--resamples", "50"]) == 0
    summary = json.loads((run / "report" / "summary.json").read_text(encoding="utf-8"))["scores"]
    row = next(r for r in summary["unscored"] if r["mode"] == "single" and r["model"] == "lora")
    assert row["unscored"] == 0


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("none", [], "no run folder"),
        ("empty", [], "neither judgments.jsonl nor answers.jsonl"),
        ("corrupt-jsonl", [], "not a valid Judgment"),
        ("corrupt-summary", [], "summary.json is not valid JSON"),
        ("empty", ["--resamples", "0"], "--resamples must be at least 1"),
        ("empty", ["--confidence", "95"], "--confidence must be between 0 and 1"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(tmp_path: Path, capsys, setup: str, args: list[str], message: str) -> None:
    run = tmp_path / "run"
    if setup != "none":
        (run / "eval").mkdir(parents=True)
    if setup == "corrupt-jsonl":
        (run / "eval" / "judgments.jsonl").write_text('{"question_id": "q1"}\n', encoding="utf-8")
    if setup == "corrupt-summary":
        write_jsonl(run / "eval" / "answers.jsonl", make_answers(load_questions()[:1], "lora", reps=1))
        (run / "report").mkdir()
        (run / "report" / "summary.json").write_text("{not json", encoding="utf-8")
    assert main(["report", "--run", str(run), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_module_entry_point_runs(tmp_path: Path) -> None:
    run = make_run(tmp_path, prefers_longer, prefers_longer, n_questions=1)
    done = subprocess.run([sys.executable, "-m", "judge", "report", "--run", str(run), "--resamples", "20"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (run / "report" / "scores.md").exists()
