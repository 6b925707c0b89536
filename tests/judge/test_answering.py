"""`python -m judge answer`: answers from an OpenAI-compatible endpoint through the engine."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from test_grade_support import (
    FAKE_URL,
    ScriptedJudge,
    clean_env,  # noqa: F401  (fixture)
    judgments,
    pick_questions,
    sim_stats,
    turns_of,
)

from factory.engine import Ledger
from factory.engine.settings import EngineSettings
from factory.simulator import SimConfig, run_simulator
from judge.__main__ import main
from judge.answering import RemoteAnswerSettings, answer_run
from schemas.evalset import DEFAULT_TEMPERATURE, MT_BENCH_TEMPERATURE
from schemas import Answer, read_jsonl, write_jsonl

pytestmark = pytest.mark.usefixtures("clean_env")


def _answers(run: Path) -> list[Answer]:
    return read_jsonl(run / "eval" / "answers.jsonl", Answer)


def test_answers_every_question_and_turn_then_the_rerun_asks_nothing(tmp_path: Path, capsys) -> None:
    questions = pick_questions(4, 3)
    qfile = tmp_path / "questions.jsonl"
    write_jsonl(qfile, questions)
    run = tmp_path / "runs" / "demo"
    with run_simulator(SimConfig(seed=1, output_tokens=40)) as url:
        args = ["answer", "--run", str(run), "--questions", str(qfile), "--endpoint", url, "--model", "lora",
                "--no-progress"]
        assert main(args) == 0
        asked = sim_stats(url)["chat_completions"]
        assert asked == turns_of(questions)
        assert main(args) == 0
        assert sim_stats(url)["chat_completions"] == asked
        assert "already answered" in capsys.readouterr().out
        # The grade command finds the question file the answers were made from.
        assert main(["grade", "--run", str(run), "--mode", "single", "--judge-model", "gpt-4o", "--base-url", url,
                     "--no-progress"]) == 0
    got = {a.question_id: a for a in _answers(run)}
    assert len(_answers(run)) == len(got) == len(questions)  # one line per question, in the order finished
    for q in questions:
        a = got[q.question_id]
        assert a.model == "lora" and len(a.turns) == len(q.turns) and all(a.turns)
        assert len(a.tokens) == len(q.turns) and all(t > 0 for t in a.tokens) and a.latency_s is not None
        assert a.temperature == MT_BENCH_TEMPERATURE.get(q.category, DEFAULT_TEMPERATURE)
        # the ledger's request behind each turn: what the comparison charges this label for its answers
        assert len(a.model_extra["request_keys"]) == len(q.turns)
        with Ledger.for_run(run) as ledger:
            assert all(ledger.get(k).stage == "eval-answers" for k in a.model_extra["request_keys"])
    saved = tomllib.loads((run / "config.toml").read_text())["answer"]["lora"]
    assert saved["questions"] == str(qfile) and saved["endpoint"] == url and saved["model"] == "lora"
    assert len(judgments(run)) == turns_of(questions)


def test_the_second_turn_is_asked_with_the_whole_conversation(tmp_path: Path) -> None:
    questions = [q for q in pick_questions(6) if len(q.turns) == 2][:3]
    qfile = tmp_path / "questions.jsonl"
    write_jsonl(qfile, questions)
    run = tmp_path / "run"
    fake = ScriptedJudge(lambda body: f"reply to: {body['messages'][-1]['content'][:30]}")
    settings = RemoteAnswerSettings(questions=qfile, model="served-lora", label="lora", endpoint=FAKE_URL,
                                    sampling="greedy", seed=11)
    counts, before = answer_run(run, settings, EngineSettings(base_url=FAKE_URL, progress=False),
                                http_client=fake.client())
    assert (counts.answered, before) == (3, 0)
    answers = {a.question_id: a for a in _answers(run)}
    second = [b for b in fake.bodies if len(b["messages"]) > 1]
    assert len(second) == 3
    for body in second:
        q = next(q for q in questions if q.turns[1] == body["messages"][-1]["content"])
        assert body["messages"] == [
            {"role": "user", "content": q.turns[0]},
            {"role": "assistant", "content": answers[q.question_id].turns[0]},
            {"role": "user", "content": q.turns[1]},
        ]
    assert all(b["model"] == "served-lora" and b["temperature"] == 0.0 and b["seed"] == 11 for b in fake.bodies)


def test_a_failed_request_leaves_the_question_for_the_rerun(tmp_path: Path, capsys) -> None:
    questions = [q for q in pick_questions(6) if len(q.turns) == 2][:3]
    qfile = tmp_path / "questions.jsonl"
    write_jsonl(qfile, questions)
    run = tmp_path / "run"
    doomed = questions[0].turns[1]
    settings = RemoteAnswerSettings(questions=qfile, model="m", label="m", endpoint=FAKE_URL)
    engine = EngineSettings(base_url=FAKE_URL, progress=False, max_attempts=1)
    failing = ScriptedJudge(lambda body: "text", status=lambda body: 500 if body["messages"][-1]["content"] == doomed else 200)
    counts, _ = answer_run(run, settings, engine, http_client=failing.client())
    assert (counts.answered, counts.failed) == (2, 1)
    assert questions[0].question_id not in {a.question_id for a in _answers(run)}

    healthy = ScriptedJudge(lambda body: "text")
    counts, before = answer_run(run, settings, engine, http_client=healthy.client())
    assert (counts.answered, counts.failed, before) == (1, 0, 2)
    assert [b["messages"][-1]["content"] for b in healthy.bodies] == [doomed]  # turn 1 came from the ledger
    assert len(_answers(run)) == 3


@pytest.mark.parametrize(("args", "message"), [
    (["--questions", "missing.jsonl", "--model", "m"], "not found"),
    (["--questions", "{qfile}"], "no model"),
    (["--questions", "{qfile}", "--model", "m", "--max-tokens", "0"], "max_tokens"),
    (["--questions", "{qfile}", "--model", "m", "--endpoint", "localhost:8000"], "base_url"),
])
def test_bad_inputs_are_one_line_and_exit_2(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    qfile = tmp_path / "questions.jsonl"
    write_jsonl(qfile, pick_questions(1))
    args = [a.replace("{qfile}", str(qfile)) for a in args]
    assert main(["answer", "--run", str(tmp_path / "run"), "--endpoint", FAKE_URL, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1

