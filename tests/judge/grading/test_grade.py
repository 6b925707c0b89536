"""`python -m judge grade`: grading through the engine against the simulator and scripted judges."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from test_grade_support import (
    FAKE_URL,
    JUDGE,
    ScriptedJudge,
    clean_env,  # noqa: F401  (fixture)
    grade_args,
    judge_calls,
    judgments,
    make_run,
    pick_questions,
    sim_stats,
    turns_of,
)

from factory.engine.settings import EngineSettings
from factory.simulator import SimConfig, run_simulator
from judge.__main__ import main
from judge.grading.run import JudgeSettings, grade_run
from judge.grading.verdicts import judgment_key

pytestmark = pytest.mark.usefixtures("clean_env")


def test_single_mode_grades_every_answer_with_the_simulators_scores(tmp_path: Path, capsys) -> None:
    questions = pick_questions(5, 3)
    run, qfile = make_run(tmp_path, questions)
    with run_simulator(SimConfig(seed=3)) as url:
        assert main(grade_args(run, qfile, url)) == 0
    out = capsys.readouterr().out
    got = judgments(run)
    assert len(got) == turns_of(questions)
    assert {(j.question_id, j.turn) for j in got} == {(q.question_id, t) for q in questions for t in range(1, len(q.turns) + 1)}
    calls = {c.key: c for c in judge_calls(run)}
    assert len(calls) == len(got) and all(c.status == "done" for c in calls.values())
    for j in got:
        assert j.status == "scored" and j.mode == "single" and j.judge_model == JUDGE and j.model == "lora"
        (key,) = j.request_keys
        reply = json.loads(calls[key].content)  # the simulator's json_schema answer
        assert j.score == reply["score"] and j.rationale == reply["rationale"]
        assert j.cost_usd == pytest.approx(calls[key].cost_usd) and j.cost_usd > 0
    assert f"graded now: {len(got)} ({len(got)} scored, 0 unscored)" in out
    assert f"python -m judge report --run {run}" in out
    spent = sum(c.cost_usd for c in calls.values())
    assert f"spent ${spent:.4f}" in out
    saved = tomllib.loads((run / "config.toml").read_text())["judge"]
    assert saved["mode"] == "single" and saved["model"] == "lora" and saved["structured"] == "yes"
    assert saved["engine"]["base_url"] == url and saved["engine"]["model"] == JUDGE
    assert "key" not in (run / "config.toml").read_text().lower()


def test_pair_mode_asks_both_orders_and_maps_positions_to_models(tmp_path: Path) -> None:
    questions = pick_questions(4, 2)
    run, qfile = make_run(tmp_path, questions, labels=("lora", "base"))
    with run_simulator(SimConfig(seed=5)) as url:
        assert main(grade_args(run, qfile, url, "--model", "lora", "--baseline", "base", mode="pair")) == 0
    got = judgments(run)
    calls = {c.key: c for c in judge_calls(run)}
    assert len(got) == turns_of(questions) and len(calls) == 2 * len(got)
    position = {"model-first": "A", "baseline-first": "B"}  # where the model's answer stood
    for j in got:
        assert j.status == "scored" and j.baseline == "base" and len(set(j.request_keys)) == 2
        verdicts = [json.loads(calls[k].content)["verdict"] for k in j.request_keys]
        assert j.order_verdicts == verdicts
        winners = ["tie" if v == "tie" else "model" if v == position[o] else "baseline"
                   for v, o in zip(verdicts, position, strict=True)]
        assert j.consistent == (winners[0] == winners[1])
        assert j.winner == (winners[0] if j.consistent else "tie")


def _always_a(body: dict) -> str:
    if body["response_format"]["json_schema"]["name"] == "judge_verdict":
        return '{"rationale": "The first answer is better.", "verdict": "A"}'
    return '{"rationale": "fine", "score": 6}'


def test_a_judge_that_always_prefers_position_a_yields_ties_and_zero_consistency(tmp_path: Path) -> None:
    questions = pick_questions(3, 2)
    run, _ = make_run(tmp_path, questions, labels=("lora", "base"))
    qfile = tmp_path / "questions.jsonl"
    fake = ScriptedJudge(_always_a)
    settings = JudgeSettings(mode="pair", judge_model=JUDGE, model="lora", baseline="base", questions=[qfile])
    outcome = grade_run(run, settings, EngineSettings(base_url=FAKE_URL, progress=False), http_client=fake.client())
    n = turns_of(questions)
    assert outcome.counts.scored == n and len(fake.graded) == 2 * n
    # Both orders were asked: each model's answer stood in position A once per comparison.
    firsts = [b["messages"][1]["content"].split("<answer_a-")[1][:200] for b in fake.graded
              if "<answer_a-" in b["messages"][1]["content"]]
    assert sum("lora answers" in f for f in firsts) == sum("base answers" in f for f in firsts) > 0
    assert {j.winner for j in judgments(run)} == {"tie"} and not any(j.consistent for j in judgments(run))
    assert main(["report", "--run", str(run), "--resamples", "200"]) == 0
    scores = json.loads((run / "report" / "summary.json").read_text())["scores"]
    pair = next(r for r in scores["pair"] if r["category"] == "all")
    assert pair["tie"]["value"] == 1.0 and pair["consistency"] == 0.0
    assert "Position consistency of gpt-4o: 0%" in (run / "report" / "scores.md").read_text()


def test_a_garbage_judge_leaves_items_unscored_and_a_rerun_asks_anew(tmp_path: Path, capsys) -> None:
    questions = pick_questions(3, 1)
    run, qfile = make_run(tmp_path, questions)
    n = turns_of(questions)
    with run_simulator(SimConfig(seed=2, output_tokens=40)) as url:
        # No json_schema: the simulator writes prose, which holds no verdict marker.
        args = grade_args(run, qfile, url, "--structured", "no", "--retries", "1")
        assert main(args) == 0
        first = judgments(run)
        assert len(first) == n and all(j.status == "unscored" and j.score is None and j.error for j in first)
        assert all(len(j.request_keys) == 2 and j.attempts == 2 for j in first)  # tried twice, then given up
        assert sim_stats(url)["chat_completions"] == 2 * n
        assert f"{n} unscored (100.0% of graded: no readable verdict after 2 tries)" in capsys.readouterr().out

        assert main(args) == 0  # a rerun: the same prompts would be ledger hits; new attempt numbers are not
        assert sim_stats(url)["chat_completions"] == 4 * n
    again = judgments(run)[n:]
    assert len(again) == n and all(j.attempts == 4 for j in again)
    assert not {k for j in first for k in j.request_keys} & {k for j in again for k in j.request_keys}
    assert main(["report", "--run", str(run), "--resamples", "100"]) == 0
    md = (run / "report" / "scores.md").read_text()
    assert "## Unscored items" in md and "100.0%" in md


def test_a_reply_in_prose_is_read_by_the_fallback_when_structured_output_is_off(tmp_path: Path) -> None:
    questions = pick_questions(2)
    run, qfile = make_run(tmp_path, questions)
    fake = ScriptedJudge(lambda body: "The answer is clear and complete.\n\nRating: [[8]]")
    settings = JudgeSettings(mode="single", judge_model=JUDGE, questions=[qfile], structured="no")
    grade_run(run, settings, EngineSettings(base_url=FAKE_URL, progress=False), http_client=fake.client())
    assert all("response_format" not in b for b in fake.bodies)
    assert [j.score for j in judgments(run)] == [8.0] * turns_of(questions)


def test_a_failed_request_leaves_its_item_for_the_rerun(tmp_path: Path, capsys) -> None:
    questions = pick_questions(3)
    run, qfile = make_run(tmp_path, questions)
    doomed = questions[1].turns[0]

    def status(body: dict) -> int:
        return 500 if doomed in body["messages"][1]["content"] else 200

    settings = JudgeSettings(mode="single", judge_model=JUDGE, questions=[qfile])
    engine = EngineSettings(base_url=FAKE_URL, progress=False, max_attempts=1)
    outcome = grade_run(run, settings, engine, http_client=ScriptedJudge(_always_a, status=status).client())
    n = turns_of(questions)
    failed = 2  # both turns of the doomed question show its first turn
    assert outcome.counts.failed == failed and outcome.counts.scored == n - failed
    assert len(judgments(run)) == n - failed  # nothing written for them: not a score, not unscored

    healthy = ScriptedJudge(_always_a)
    outcome = grade_run(run, settings, engine, http_client=healthy.client())
    assert outcome.counts.scored == failed and outcome.counts.already_scored == n - failed
    assert len(healthy.bodies) == failed
    keys = [judgment_key(j) for j in judgments(run)]
    assert len(keys) == len(set(keys)) == n


def test_the_budget_stops_the_run_and_a_rerun_finishes_it(tmp_path: Path, capsys) -> None:
    questions = pick_questions(6)
    run, qfile = make_run(tmp_path, questions)
    n = turns_of(questions)
    with run_simulator(SimConfig(seed=4)) as url:
        assert main(grade_args(run, qfile, url, "--max-cost", "0.01", "--max-concurrency", "1")) == 1
        out = capsys.readouterr().out
        partial = judgments(run)
        assert 0 < len(partial) < n and "the --max-cost budget is spent" in out
        assert sum(c.cost_usd for c in judge_calls(run)) <= 0.01
        assert main(grade_args(run, qfile, url, "--max-cost", "1")) == 0
    keys = [judgment_key(j) for j in judgments(run)]
    assert len(keys) == len(set(keys)) == n


@pytest.mark.parametrize(("setup", "extra", "message"), [
    ("no-answers", [], "no answers at"),
    ("ok", ["--model", "nobody"], "no answers labelled 'nobody'"),
    ("ok", ["--mode", "pair", "--baseline", "base"], "the baseline 'base' has no answers"),
    ("ok", ["--mode", "pair"], "mode pair needs --baseline"),
    ("bad-questions", [], "not a valid Question"),
    ("missing-questions", [], "not found"),
    ("ok", ["--retries", "-1"], "retries"),
])
def test_bad_inputs_are_one_line_and_exit_2_before_any_request(tmp_path: Path, capsys, setup: str, extra: list[str],
                                                               message: str) -> None:
    run, qfile = make_run(tmp_path, pick_questions(2))
    if setup == "no-answers":
        (run / "eval" / "answers.jsonl").unlink()
    elif setup == "bad-questions":
        qfile.write_text('{"question_id": "x", "turns": []}\n')
    elif setup == "missing-questions":
        qfile.unlink()
    with run_simulator(SimConfig()) as url:
        args = grade_args(run, qfile, url)
        for flag, value in zip(extra[::2], extra[1::2], strict=True):
            if flag in args:
                args[args.index(flag) + 1] = value
            else:
                args += [flag, value]
        assert main(args) == 2
        assert sim_stats(url)["chat_completions"] == 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (run / "eval" / "judgments.jsonl").exists()


def test_a_bad_key_stops_with_one_line_and_never_shows_the_key(tmp_path: Path, capsys, monkeypatch) -> None:
    run, qfile = make_run(tmp_path, pick_questions(3))
    wrong = "sk-wrong-0123456789a"
    monkeypatch.setenv("OPENAI_API_KEY", wrong)
    with run_simulator(SimConfig(api_key="sk-right-0123456789a")) as url:
        assert main(grade_args(run, qfile, url)) == 2
        assert sim_stats(url)["by_status"] == {"401": 1}  # the engine's probe alone, refused
    err = capsys.readouterr().err
    assert err.startswith("error: the API rejected the key") and err.count("\n") == 1
    assert wrong not in err and wrong not in (run / "config.toml").read_text()


def test_an_endpoint_that_refuses_structured_output_is_graded_as_text(tmp_path: Path, capsys, monkeypatch) -> None:
    """--structured auto: one probe learns that the endpoint refuses json_schema; the verdicts are then
    asked for and read as text, and a rerun of the folder does not probe again."""
    import judge.commands.grade as grade

    run, qfile = make_run(tmp_path, pick_questions(4))
    prose = ScriptedJudge(lambda body: "Score: 7", status=lambda body: 400 if "response_format" in body else 200)
    real = grade.grade_run
    monkeypatch.setattr(grade, "grade_run", lambda *a, **kw: real(*a, **kw, http_client=prose.client()))
    assert main(grade_args(run, qfile, FAKE_URL)) == 0
    err = capsys.readouterr().err
    assert "takes neither json_schema nor json_object replies" in err and "parsed as text" in err
    probes = [b for b in prose.bodies if "probe)" in b["messages"][-1]["content"]]
    assert len(probes) == 1, "one failed probe, and json_object is not tried: the refusal did not name it"
    assert not any("response_format" in b for b in prose.bodies if b not in probes)
    assert {j.score for j in judgments(run)} == {7.0}
    assert (run / "config.toml").read_text().count('format = "text"') == 1
    sent = len(prose.bodies)
    assert main(grade_args(run, qfile, FAKE_URL)) == 0 and len(prose.bodies) == sent, "graded already, probed already"


def test_missing_mode_or_judge_model_says_which_flag_to_give(tmp_path: Path, capsys) -> None:
    run, qfile = make_run(tmp_path, pick_questions(1))
    assert main(["grade", "--run", str(run), "--judge-model", JUDGE]) == 2
    assert capsys.readouterr().err == "error: no grading mode: give --mode single, pair or reference\n"
    assert main(["grade", "--run", str(run), "--mode", "single"]) == 2
    assert capsys.readouterr().err == "error: no judge model: give --judge-model, e.g. gpt-4o\n"


def test_settings_come_from_the_config_file_and_flags_override_them(tmp_path: Path) -> None:
    questions = [q for q in pick_questions(20) if q.reference][:3] + pick_questions(2)
    run, qfile = make_run(tmp_path, questions)
    config = tmp_path / "judge.toml"
    with run_simulator(SimConfig(seed=6)) as url:
        config.write_text(f'[judge]\nmode = "single"\njudge_model = "{JUDGE}"\nquestions = ["{qfile}"]\n\n'
                          f'[engine]\nbase_url = "{url}"\nprogress = false\n')
        assert main(["grade", "--run", str(run), "--config", str(config), "--mode", "reference"]) == 0
    got = judgments(run)
    with_reference = sum(len(q.reference or []) for q in questions)
    assert len(got) == with_reference and {j.mode for j in got} == {"reference"}
    saved = tomllib.loads((run / "config.toml").read_text())["judge"]
    assert saved["mode"] == "reference" and saved["engine"]["base_url"] == url


def test_a_llamacpp_server_grades_in_json_object_form_and_every_verdict_is_read(tmp_path: Path, capsys) -> None:
    """llama.cpp's server refuses json_schema with a 500 and takes json_object with the schema: one failed
    probe, then every verdict comes back in the schema's shape."""
    run, qfile = make_run(tmp_path, pick_questions(3))
    with run_simulator(SimConfig(seed=3, server="llamacpp")) as url:
        assert main(grade_args(run, qfile, url)) == 0
    out = capsys.readouterr()
    assert "0 unscored" in out.out and "structured output" not in out.err
    config = tomllib.loads((run / "config.toml").read_text())
    assert config["structured"][url]["format"] == "json_object" and config["judge"]["structured"] == "yes"
    assert judgments(run) and all(j.status == "scored" for j in judgments(run))
