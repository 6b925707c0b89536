"""`python -m judge compare`: several runs graded against one baseline through the engine, by a judge
of planted strengths with a position and a length bias; resume, unscored verdicts, the reports."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from compare_fakes import PLANTED, RUNS, make_runs, some_questions
from test_grade_support import FAKE_URL, JUDGE, ScriptedJudge, clean_env  # noqa: F401  (fixture)

from factory.engine import usd
from factory.engine.ledger import Ledger
from factory.engine.settings import EngineSettings
from factory.simulator import SimConfig, run_simulator
from judge.__main__ import main
from judge.compare.run import CompareSettings, run_compare
from judge.compare.page import parse_figure
from judge.compare.planted import PlantedJudge
from schemas import Answer, LLMCall, RunFolder, Usage, read_jsonl, write_jsonl

pytestmark = pytest.mark.usefixtures("clean_env")

planted_judge = PlantedJudge(PLANTED).reply


def _settings(runs: list[Path], tmp: Path, **kw: Any) -> CompareSettings:
    return CompareSettings(runs=runs, baseline="base", judge_model=JUDGE, questions=[tmp / "questions.jsonl"],
                           bootstrap_rounds=100, **kw)


ENGINE = EngineSettings(base_url=FAKE_URL, progress=False)


def test_the_leaderboard_recovers_the_planted_order_and_a_rerun_sends_nothing(tmp_path: Path) -> None:
    questions = some_questions(25, 15)
    runs = make_runs(tmp_path, questions)
    out = tmp_path / "cmp"
    fake = ScriptedJudge(planted_judge)
    counts, result, _ = run_compare(out, _settings(runs, tmp_path), ENGINE, http_client=fake.client())
    n = 2 * len(questions) * len(RUNS)  # turns x models
    assert counts.scored == n and len(fake.graded) == 2 * n  # both orders of every comparison
    order = [r["name"] for r in result["models"] if not r["is_baseline"]]
    assert order == ["strong/lora", "mid/lora", "weak/lora"]
    rows = {r["name"]: r for r in result["models"]}
    assert rows["strong/lora"]["score_low"] > 50 > rows["weak/lora"]["score_high"]
    assert all(r["score_low"] <= r["score"] <= r["score_high"] for r in rows.values())
    assert rows["base"]["score"] == 50.0 and rows["base"]["is_baseline"]
    assert result["grading"] == {"planned": n, "scored": n, "unscored": 0, "missing": 0}
    # The judge is paid per request: each model's share comes from the comparison's ledger.
    assert all(rows[m]["cost"]["judging_usd"] > 0 for m in order)
    with Ledger.for_run(out) as ledger:
        assert sum(1 for _ in ledger.calls(stage="judge")) == 2 * n
    before = len(fake.bodies)
    counts, again, _ = run_compare(out, _settings(runs, tmp_path), ENGINE, http_client=fake.client())
    assert len(fake.bodies) == before and counts.already_scored == n  # nothing is graded twice
    assert [r["score"] for r in again["models"]] == [r["score"] for r in result["models"]]


def _flaky(body: dict[str, Any]) -> str:
    if "답변" in body["messages"][1]["content"]:
        return "I cannot decide."  # no verdict for Korean questions
    return planted_judge(body)


def test_unreadable_verdicts_stay_unscored_are_counted_and_a_rerun_grades_only_them(tmp_path: Path) -> None:
    questions = some_questions(4, 2)
    runs = make_runs(tmp_path, questions)
    out = tmp_path / "cmp"
    bad = ScriptedJudge(_flaky)
    counts, result, _ = run_compare(out, _settings(runs, tmp_path, retries=1), ENGINE, http_client=bad.client())
    unscored = 2 * 2 * len(RUNS)  # two Korean questions, two turns, three models
    assert counts.unscored == unscored and result["grading"]["unscored"] == unscored
    assert all(r["unscored"] == 4 for r in result["models"] if not r["is_baseline"])
    assert "| unscored |" in (out / "compare.md").read_text().replace("unscored |", "unscored |")
    good = ScriptedJudge(planted_judge)
    counts, result, _ = run_compare(out, _settings(runs, tmp_path), ENGINE, http_client=good.client())
    assert counts.already_scored == counts.planned - unscored and len(good.graded) == 2 * unscored
    assert result["grading"]["unscored"] == 0


def test_an_answer_in_the_wrong_language_is_flagged_or_scored_as_a_loss(tmp_path: Path) -> None:
    questions = some_questions(6, 6)
    runs = make_runs(tmp_path, questions, english_in_korean="3")
    out = tmp_path / "cmp"
    fake = ScriptedJudge(planted_judge)
    _, flagged, _ = run_compare(out, _settings(runs, tmp_path), ENGINE, http_client=fake.client())
    rows = {r["name"]: r for r in flagged["models"]}
    assert rows["strong/lora"]["wrong_language_rate"] == 1.0  # of its answers to Korean questions
    assert rows["strong/lora"]["korean_answers"] == 12
    assert rows["mid/lora"]["wrong_language_rate"] == 0.0 and rows["base"]["wrong_language_rate"] == 0.0
    _, lost, _ = run_compare(out, _settings(runs, tmp_path, wrong_language="loss", grade=False), ENGINE)
    strong = next(r for r in lost["models"] if r["name"] == "strong/lora")
    assert strong["score"] < rows["strong/lora"]["score"]
    assert strong["loss"] >= 0.5 and lost["settings"]["wrong_language"] == "loss"


def test_cost_comes_from_the_runs_ledger_and_training_metrics(tmp_path: Path) -> None:
    questions = some_questions(6, 0)
    runs = make_runs(tmp_path, questions)
    strong = runs[2]
    with Ledger.for_run(strong) as ledger:
        ledger.record([LLMCall(key="k1", stage="self-instruct", model="gpt-4o-mini", status="done",
                               usage=Usage(input_tokens=10, output_tokens=10), cost_usd=1.25)])
    # three logged steps of ten: 1000 tokens per step at 500 tokens/s -> 2 s a step
    metrics = [{"step": s, "loss": 1.0, "tokens": 1000, "tokens_per_s": 500.0} for s in (4, 8, 10)]
    (strong / "train").mkdir()
    (strong / "train" / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    out = tmp_path / "cmp"
    _, result, _ = run_compare(out, _settings(runs, tmp_path, gpu_hour_usd=3.6), ENGINE,
                               http_client=ScriptedJudge(planted_judge).client())
    row = next(r for r in result["models"] if r["name"] == "strong/lora")
    c = row["cost"]
    assert c["data_usd"] == 1.25 and c["tokens_trained"] == 10_000 and c["gpu_seconds"] == pytest.approx(20.0)
    assert c["training_usd"] == pytest.approx(20 / 3600 * 3.6) and c["training_estimated"]
    assert c["total_usd"] == pytest.approx(1.25 + c["judging_usd"] + c["training_usd"])
    if row["score"] > 50:
        assert row["usd_per_point"] == pytest.approx(c["total_usd"] / (row["score"] - 50))
    weak = next(r for r in result["models"] if r["name"] == "weak/lora")
    assert weak["cost"]["training_usd"] is None and weak["cost"]["data_usd"] == 0.0


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[str, str], str] = {}
        self._open: tuple[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "td" and "data-field" in a:
            self._open = (a["data-model"] or "", a["data-field"] or "")
            self.cells[self._open] = ""

    def handle_data(self, data: str) -> None:
        if self._open:
            self.cells[self._open] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._open = None


def test_the_pages_figures_are_those_of_compare_json(tmp_path: Path) -> None:
    questions = some_questions(8, 4)
    runs = make_runs(tmp_path, questions)
    out = tmp_path / "cmp"
    run_compare(out, _settings(runs, tmp_path, gpu_hour_usd=2.0), ENGINE, http_client=ScriptedJudge(planted_judge).client())
    data = json.loads((out / "compare.json").read_text())
    page = (out / "compare.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page  # opens from disk, offline
    parser = _Cells()
    parser.feed(page)
    checked = 0
    scale = {"win": 100, "tie": 100, "loss": 100, "wrong_language_rate": 100}
    for r in data["models"]:
        for field in ("score", "score_low", "score_high", "win", "tie", "loss", "raw_win_rate", "lc_win_rate",
                      "mean_length", "wrong_language_rate", "unscored", "usd_per_point", "cost.total_usd"):
            value: Any = r
            for part in field.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            shown = parse_figure(parser.cells[(r["name"], field)])
            if value is None:
                assert shown is None, (r["name"], field)
            else:
                # shown to 0.1 (percent), to the unit (lengths, counts) or to $0.0001
                usd = field.endswith("usd") or field == "usd_per_point"
                tol = (0.00005 if abs(value) < 1 else 0.005) if usd else 0.5 if field in ("mean_length", "unscored") else 0.051
                assert shown == pytest.approx(value * scale.get(field, 1), abs=tol), (r["name"], field)
                checked += 1
    players = data["pairwise"]["players"]
    for a, row in zip(players, data["pairwise"]["win_probability"], strict=True):
        for b, v in zip(players, row, strict=True):
            shown = parse_figure(parser.cells[(a, f"pairwise:{b}")])
            assert (shown is None) if v is None else shown == pytest.approx(v, abs=0.051)
            checked += 1
    for m, by_cat in data["categories"]["scores"].items():
        for c, v in by_cat.items():
            assert parse_figure(parser.cells[(m, f"category:{c}")]) == pytest.approx(v, abs=0.051)
            checked += 1
    assert checked > 60
    for r in data["models"]:
        for part in ("data_usd", "answers_usd", "judging_usd", "training_usd"):
            if r["cost"] and r["cost"][part] is not None:
                shown = parse_figure(parser.cells[(r["name"], f"cost.{part}")])
                assert shown == pytest.approx(r["cost"][part], abs=0.00005), (r["name"], part)
                checked += 1
    md = (out / "compare.md").read_text()
    top = data["models"][0]
    assert f"| 1 | {top['name']} | {top['score']:.1f} |" in md


def test_the_command_line_grades_through_the_simulator_and_explains_bad_input(tmp_path: Path, capsys) -> None:
    questions = some_questions(3, 1)
    runs = make_runs(tmp_path, questions)
    out = tmp_path / "cmp"
    with run_simulator(SimConfig(seed=1)) as url:
        args = ["compare", "--runs", *map(str, runs), "--baseline", "base", "--judge-model", JUDGE, "--out", str(out),
                "--questions", str(tmp_path / "questions.jsonl"), "--base-url", url, "--no-progress",
                "--bootstrap-rounds", "100"]
        assert main(args) == 0
    printed = capsys.readouterr().out
    assert "24 comparisons (24 scored, 0 unscored, 0 not graded yet)" in printed
    assert (out / "compare.html").exists() and (out / "config.toml").exists()
    i = args.index("--baseline") + 1
    assert main([*args[:i], "nobody", *args[i + 1:]]) == 2
    assert "no run has answers labelled 'nobody'" in capsys.readouterr().err
    assert main([*args, "--bootstrap-rounds", "10"]) == 2
    assert "bootstrap_rounds" in capsys.readouterr().err


def test_a_runs_spend_is_split_per_label_and_what_cannot_be_split_says_shared(tmp_path: Path) -> None:
    questions = some_questions(4, 0)
    runs = make_runs(tmp_path, questions)
    strong = runs[2]
    # strong also holds answers an endpoint served (it may serve strong's adapter) and the base model's own
    write_jsonl(strong / "eval" / "answers.jsonl",
                read_jsonl(strong / "eval" / "answers.jsonl", Answer)
                + [Answer(question_id=q.question_id, model=label, turns=[f"[#{marker}] An answer." for _ in q.turns])
                   for q in questions for label, marker in (("served", "3"), ("plain", "1"))])
    RunFolder(strong).write_config_section(("answer", "served"), {"endpoint": "http://127.0.0.1:9/v1", "model": "lora"})
    RunFolder(strong).write_config_section(("answer", "plain"), {"model": "m"})
    RunFolder(strong).write_config_section(("answer", "lora"), {"adapter": str(strong / "train" / "adapter")})
    with Ledger.for_run(strong) as ledger:
        ledger.record([LLMCall(key="k1", stage="self-instruct", model="gpt-4o-mini", status="done",
                               usage=Usage(input_tokens=10, output_tokens=10), cost_usd=2.0)])
    out = tmp_path / "cmp"
    _, result, _ = run_compare(out, _settings(runs, tmp_path), ENGINE, http_client=ScriptedJudge(planted_judge).client())
    rows = {r["name"]: r for r in result["models"]}
    lora, served, plain = rows["strong/lora"]["cost"], rows["strong/served"]["cost"], rows["strong/plain"]["cost"]
    assert lora["data_usd"] == served["data_usd"] == 2.0 and lora["basis"]["data"] == "shared"
    assert lora["shared_with"]["data"] == ["served"] and served["shared_with"]["data"] == ["lora"]
    assert plain["data_usd"] == 0.0 and plain["basis"]["data"] == "not used"  # the base model never saw the data
    assert rows["mid/lora"]["cost"]["basis"]["data"] == "own"
    md = (out / "compare.md").read_text()
    assert f"| strong/lora | {usd(2.0)} shared |" in md and f"| strong/plain | {usd(0.0)} not used |" in md
    assert "strong/lora shares data with served; training with served" in md
    page = (out / "compare.html").read_text()
    assert f'data-field="cost.data_usd">{usd(2.0)} <span class="basis">shared</span>' in page
