"""The path of a user with a local model, against the real thing: llama.cpp's OpenAI-compatible server
(the `local` extra) serving SmolLM2-135M-Instruct, a small generate and a small judge through it.

Both go through `--structured auto`: one failed probe (the server refuses json_schema with a 500),
then json_object with the schema, which a grammar holds the model to, so the replies parse (those
cut at max_tokens are counted apart: a cut reply is not a parse failure of the grammar). No repeated
failure storm: beside that one probe, no request fails. Slow (the model writes ~5-40 tokens/s on
two cores); CI installs the extra (`DEV_EXTRAS=local`), so these run there; elsewhere they skip and
say why."""

from __future__ import annotations

import json
import sqlite3
import tomllib
from importlib.util import find_spec
from pathlib import Path

import pytest

from factory.__main__ import main as factory_main
from schemas import Answer, Example, Question, RunFolder, read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_spec("llama_cpp") is None,
                       reason="needs the `local` extra (llama-cpp-python[server]): DEV_EXTRAS=local ./dev just test"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    from factory.local_server import local_server

    log = tmp_path_factory.mktemp("server") / "server.log"
    with local_server("smollm2", log=log) as s:
        yield s


def ledger(run: Path) -> list[tuple[str, str, str | None, str | None]]:
    db = sqlite3.connect(RunFolder(run).ledger)
    try:
        return db.execute("SELECT stage, status, finish_reason, error FROM requests ORDER BY rowid").fetchall()
    finally:
        db.close()


def test_a_small_generate_keeps_parsed_examples_after_one_failed_probe(server, tmp_path: Path) -> None:
    run = tmp_path / "run"
    code = factory_main(["generate", "--run", str(run), "--recipe", "self-instruct",
                         "--seeds", str(ROOT / "examples" / "seed_tasks_en.jsonl"), "--n", "3",
                         "--tasks-per-request", "2", "--instruct-max-tokens", "320", "--base-url", server.base_url, "--model", server.model,
                         "--price-input", "0", "--price-output", "0", "--no-progress"])
    rows = ledger(run)
    assert [r[:2] for r in rows[:2]] == [("probe", "failed"), ("probe", "done")], rows[:2]
    assert "Input should be 'text' or 'json_object'" in (rows[0][3] or "")
    assert tomllib.loads(RunFolder(run).config.read_text())["structured"][server.base_url]["format"] == "json_object"
    work = [r for r in rows if r[0] != "probe"]
    assert work and all(status == "done" for _, status, _, _ in work), "no request failed: no storm"
    replies = [r for r in work if r[2] != "length"]  # a reply cut at max_tokens is counted apart
    parse = [json.loads(line) for line in RunFolder(run).rejected.read_text().splitlines()
             if json.loads(line)["reason"] == "parse"] if RunFolder(run).rejected.exists() else []
    assert replies and len(parse) <= 0.05 * len(replies), f"{len(parse)} of {len(replies)} replies did not parse"
    kept = read_jsonl(RunFolder(run).examples, Example) if RunFolder(run).examples.exists() else []
    assert code == 0 and len(kept) >= 3, f"kept {len(kept)} (exit {code})"


def test_a_small_judge_reads_every_verdict(server, tmp_path: Path) -> None:
    from judge.__main__ import main as judge_main

    run = tmp_path / "run"
    questions = read_jsonl(ROOT / "evalsets" / "en.jsonl", Question)[:2]
    questions = [q.model_copy(update={"turns": q.turns[:1]}) for q in questions]
    write_jsonl(tmp_path / "q.jsonl", questions)
    write_jsonl(RunFolder(run).answers, [
        Answer(question_id=q.question_id, model="lora", turns=[f"A short answer to: {q.turns[0][:80]}"])
        for q in questions])
    code = judge_main(["grade", "--run", str(run), "--mode", "single", "--judge-model", server.model,
                       "--questions", str(tmp_path / "q.jsonl"), "--base-url", server.base_url,
                       "--price-input", "0", "--price-output", "0", "--no-progress", "--judge-max-tokens", "120"])
    judgments = [json.loads(line) for line in RunFolder(run).judgments.read_text().splitlines()]
    assert code == 0 and len(judgments) == len(questions)
    assert all(j["status"] == "scored" for j in judgments), [j.get("rationale") for j in judgments]
    work = [r for r in ledger(run) if r[0] != "probe"]
    assert all(status == "done" for _, status, _, _ in work)
