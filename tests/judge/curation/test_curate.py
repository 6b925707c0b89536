"""`python -m judge curate` and `judge.curate`: grading a run's kept examples through the engine,
resume without paying twice, the budget, the dry run, the prefilter, the selection as a run folder,
and the report's curation section."""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_grade_support import ScriptedJudge, clean_env  # noqa: F401  (fixture)

import judge
from factory.engine import EngineSettings, Ledger
from factory.simulator import SimConfig, run_simulator
from judge.__main__ import main
from judge.curation.run import curate
from judge.curation.settings import CurateSettings
from judge.reports.overview import write_overview
from schemas import Example, RunFolder, iter_jsonl

pytestmark = pytest.mark.usefixtures("clean_env")
JUDGE = "gpt-4o"


def make_run(root: Path, n: int = 12, *, loop: int | None = None) -> RunFolder:
    run = RunFolder(root)
    root.mkdir(parents=True)
    rows = []
    for i in range(n):
        ko = i % 3 == 2
        rows.append({"id": f"ex-{i}", "lang": "ko" if ko else "en",
                     "instruction": f"과제 {i}: 이 개념을 설명하세요." if ko else f"Task {i}: explain this idea.",
                     "output": ("again and again " * 20) if i == loop else f"An answer to task {i}, with an example."})
    run.examples.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    run.rejected.write_text(json.dumps({"id": "r1", "reason": "duplicate", "detail": "duplicate of ex-1 (similarity 0.9)"})
                            + "\n", encoding="utf-8")
    return run


def task_number(body: dict[str, Any]) -> int:
    m = re.search(r"<instruction-\w+>\n(?:Task|과제) (\d+):", body["messages"][1]["content"])
    assert m, "the example is fenced in the prompt"
    return int(m.group(1))


def by_task(body: dict[str, Any]) -> str:
    """A judge whose grade follows the task number: overall 1 + (i mod 9) / 2."""
    i = task_number(body)
    return json.dumps({"rationale": f"task {i}", "accuracy": 1 + i % 5, "helpfulness": 3, "clarity": 4,
                       "language_fit": 5, "overall": 1 + (i % 9) / 2})


def scores(run: RunFolder, name: str = f"{JUDGE}-v1") -> dict[str, dict[str, Any]]:
    lines = [json.loads(x) for x in run.curation_scores(name).read_text().splitlines()]
    return {x["example_id"]: x for x in lines}


def settings(**kw: Any) -> CurateSettings:
    return CurateSettings(judge_model=JUDGE, **kw)


def engine(**kw: Any) -> EngineSettings:
    return EngineSettings(base_url="http://judge.localhost/v1", model=JUDGE, progress=False, **kw)


def test_every_example_is_graded_and_the_best_are_a_run_folder_of_their_own(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs" / "demo")
    fake = ScriptedJudge(by_task)
    out = curate(run.root, settings(), engine(), http_client=fake.client(), api_key="sk-test")
    got = scores(run)
    assert len(got) == 12 and all(s["status"] == "scored" for s in got.values())
    for i in range(12):
        s = got[f"ex-{i}"]
        assert s["overall"] == 1 + (i % 9) / 2 and s["criteria"]["accuracy"] == 1 + i % 5
        assert s["rationale"] == f"task {i}" and s["cost_usd"] > 0 and len(s["request_keys"]) == 1
        assert s["judge_model"] == JUDGE and s["rubric_version"] == "v1" and s["lang"] in ("en", "ko")
    assert got["ex-1"]["signals"]["duplicates"] == 1
    with Ledger.for_run(run.root) as ledger:
        calls = list(ledger.calls(stage="curate"))
    assert len(calls) == 12 and sum(c.cost_usd for c in calls) == pytest.approx(out.counts.cost_usd)
    # the default selection: overall >= 4.5, in the run's order, with provenance back to the graded run
    sel = out.selection
    assert sel is not None and sel.folder == tmp_path / "runs" / f"demo-{JUDGE}-v1-min4.5"
    kept = [ex.id for ex in iter_jsonl(RunFolder(sel.folder).examples, Example)]
    assert kept == [f"ex-{i}" for i in range(12) if 1 + (i % 9) / 2 >= 4.5] == ["ex-7", "ex-8"]
    prov = tomllib.loads((sel.folder / "config.toml").read_text())["curated_from"]
    assert prov["run"] == str(run.root.resolve()) and prov["curation"] == f"{JUDGE}-v1" and prov["kept"] == 2
    recorded = tomllib.loads(run.config.read_text())["curation"][f"{JUDGE}-v1"]
    assert recorded["judge_model"] == JUDGE and recorded["structured"] == "yes" and "key" not in run.config.read_text()
    # Korean examples were asked in Korean
    ko = [b for b in fake.graded if task_number(b) % 3 == 2]
    assert ko and all("한국어" in b["messages"][0]["content"] for b in ko)


def test_a_rerun_pays_nothing_twice_and_asks_unreadable_ones_anew(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    seen: Counter[int] = Counter()

    def flaky(body: dict[str, Any]) -> str:  # tasks 2 and 5 never answer readably in the first call
        i = task_number(body)
        seen[i] += 1
        return "I like it, maybe a 4?" if i in (2, 5) and phase == 1 else by_task(body)

    phase = 1
    fake = ScriptedJudge(flaky)
    first = curate(run.root, settings(retries=1), engine(), http_client=fake.client(), api_key="sk-test")
    assert first.counts.scored == 10 and first.counts.unscored == 2 and seen[2] == 2  # the first try and one retry
    s = scores(run)
    assert s["ex-2"]["status"] == "unscored" and s["ex-2"]["overall"] is None and s["ex-2"]["attempts"] == 2
    assert first.selection is not None  # every example has its line
    # the scores file lost (a crash before the lines were written): the ledger answers, nothing is paid again
    run.curation_scores(f"{JUDGE}-v1").unlink()
    before = len(fake.bodies)
    again = curate(run.root, settings(retries=1), engine(), http_client=fake.client(), api_key="sk-test")
    assert again.counts.cached == again.counts.requests == 14 and again.counts.cost_usd == 0
    assert len(fake.bodies) == before and again.counts.scored == 10 and again.counts.unscored == 2
    # the next call asks the two unreadable ones anew, after the attempts they used (new requests, not the cache)
    phase = 2
    third = curate(run.root, settings(retries=1), engine(), http_client=fake.client(), api_key="sk-test")
    assert len(fake.bodies) - before == 2 and third.counts.cached == 0 and third.counts.scored == 2
    assert third.counts.already_scored == 10 and scores(run)["ex-5"]["attempts"] == 3
    # and then everything is final: nothing is sent
    before = len(fake.bodies)
    fourth = curate(run.root, settings(retries=1), engine(), http_client=fake.client(), api_key="sk-test")
    assert len(fake.bodies) == before and fourth.counts.requests == 0 and fourth.counts.already_scored == 12


def test_an_unscored_line_is_asked_again_with_a_new_attempt(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", n=3)
    fake = ScriptedJudge(lambda body: "no grade here")
    out = curate(run.root, settings(retries=0), engine(), http_client=fake.client(), api_key="sk-test")
    assert out.counts.unscored == 3 and all(s["status"] == "unscored" for s in scores(run).values())
    good = ScriptedJudge(by_task)
    out = curate(run.root, settings(retries=0), engine(), http_client=good.client(), api_key="sk-test")
    assert out.counts.scored == 3 and out.counts.cached == 0  # a new nonce: not the cached unreadable reply
    assert all(s["status"] == "scored" for s in scores(run).values())


def test_the_budget_stops_before_it_is_exceeded_and_the_selection_waits(tmp_path: Path, capsys) -> None:
    run = make_run(tmp_path / "runs" / "b", n=12)
    with run_simulator(SimConfig(seed=4)) as url:
        args = ["curate", "--run", str(run.root), "--judge-model", JUDGE, "--base-url", url, "--no-progress"]
        assert main([*args, "--max-cost", "0.02"]) == 1
        out = capsys.readouterr().out
        assert "not finished: the --max-cost budget is spent" in out and "selection not written" in out
        with Ledger.for_run(run.root) as ledger:
            assert sum(c.cost_usd or 0 for c in ledger.calls(stage="curate")) <= 0.02
        assert not (tmp_path / "runs" / f"b-{JUDGE}-v1-min4.5").exists()
        partial = len(scores(run))
        assert 0 < partial < 12
        assert main([*args, "--max-cost", "1"]) == 0
        out = capsys.readouterr().out
    assert len(scores(run)) == 12 and f"({partial} graded before)" in out and "selected" in out


def test_the_dry_run_sends_and_writes_nothing(tmp_path: Path, capsys) -> None:
    run = make_run(tmp_path / "run", n=5)
    before = sorted(p.name for p in run.root.iterdir())
    assert main(["curate", "--run", str(run.root), "--judge-model", JUDGE, "--dry-run",
                 "--base-url", "http://127.0.0.1:9/v1"]) == 0  # nothing listens there: nothing may be sent
    out = capsys.readouterr().out
    assert "5 to grade" in out and "5 requests" in out and "at most $" in out and "nothing was sent" in out
    assert sorted(p.name for p in run.root.iterdir()) == before


def test_the_prefilter_skips_what_the_free_signals_condemn(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", n=6, loop=4)
    fake = ScriptedJudge(by_task)
    out = curate(run.root, settings(prefilter=True, keep_min_score=1.0), engine(), http_client=fake.client(),
                 api_key="sk-test")
    assert out.skipped_now == 1 and out.skipped_saved_usd and out.skipped_saved_usd > 0
    assert 4 not in {task_number(b) for b in fake.graded}
    s = scores(run)["ex-4"]
    assert s["status"] == "skipped" and "loop" in s["error"] and s["cost_usd"] == 0
    assert out.selection is not None and out.selection.kept == 5  # never selected, even at the lowest bar
    # without the prefilter, the skipped example is graded
    out = curate(run.root, settings(keep_min_score=1.0), engine(), http_client=fake.client(), api_key="sk-test")
    assert out.counts.scored == 1 and scores(run)["ex-4"]["status"] == "scored"


def test_bad_settings_and_a_folder_that_is_not_a_selection_are_refused(tmp_path: Path, capsys) -> None:
    run = make_run(tmp_path / "runs" / "x", n=3)
    base = ["curate", "--run", str(run.root), "--judge-model", JUDGE, "--base-url", "http://127.0.0.1:9/v1"]
    with pytest.raises(SystemExit):
        main([*base, "--keep-min-score", "4", "--keep-top", "0.2"])
    assert main([*base, "--keep-min-score", "4.2", "--dry-run"]) == 2
    assert "half points" in capsys.readouterr().err
    assert main(["curate", "--run", str(tmp_path / "nothing"), "--judge-model", JUDGE, "--dry-run"]) == 2
    assert "no kept examples" in capsys.readouterr().err
    other = tmp_path / "runs" / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    fake = ScriptedJudge(by_task)
    with pytest.raises(judge.CurateError, match="not a selection"):
        curate(run.root, settings(out=other), engine(), http_client=fake.client(), api_key="sk-test")
    assert (other / "notes.txt").read_text() == "mine" and len(scores(run)) == 3  # the grades are kept
    sel = curate(run.root, settings(keep_top=0.5), engine(), http_client=fake.client(), api_key="sk-test").selection
    assert sel is not None and sel.kept == 2 and sel.unchanged is False
    again = curate(run.root, settings(keep_top=0.5), engine(), http_client=fake.client(), api_key="sk-test").selection
    assert again is not None and again.unchanged


def test_the_report_shows_the_curation_and_the_api_returns_the_grades(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    run = make_run(tmp_path / "runs" / "r", n=9)
    with run_simulator(SimConfig(seed=2)) as url:
        result = judge.curate(run.root, judge_model=JUDGE, base_url=url, keep_min_score=3, progress="none")
    assert result.status == 0 and result.selection is not None and "selected" in str(result)
    frame = result.scores()
    assert frame.height == 9 and set(frame["status"].to_list()) == {"scored"}
    out = write_overview(run.root)
    assert out.parts["curation"]
    (c,) = out.summary["curation"]
    assert c["scored"] == 9 and sum(c["histogram"].values()) == 9
    assert c["kept_at"][0] == {"min": 1.0, "kept": 9} and c["selections"][0]["kept"] == result.outcome.selection.kept
    page = out.index_html.read_text()
    assert "<h2>Curation</h2>" in page and "Lowest rated" in page and "per 1,000 examples" in page
    data = judge.view(run.root)  # the data page's curation tab reads what curate wrote
    assert data.rows[f"curation:{JUDGE}-v1"] == 9 and data.rows["examples"] == 9
