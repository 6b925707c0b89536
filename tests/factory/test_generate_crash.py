"""`kill -9` in the middle of `generate`, then the same command again: the rerun finishes the job,
pays for nothing the ledger already had, and writes no example twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from factory.recipes.journal import JournalEntry
from factory.recipes.topics import KeptQuestion
from factory.simulator import SimConfig, run_simulator
from schemas import Example, ReadReport, read_jsonl

ROOT = Path(__file__).resolve().parents[2]
CONCURRENCY = 8


def _command(run: Path, url: str, recipe: str, seeds: Path, n: int) -> list[str]:
    return [sys.executable, "-m", "factory", "generate", "--run", str(run), "--base-url", url, "--model", "gpt-4o-mini",
            "--recipe", recipe, "--seeds", str(seeds), "--n", str(n), "--max-concurrency", str(CONCURRENCY),
            "--no-progress"]


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}


def _served(url: str) -> int:
    return httpx.get(url.removesuffix("/v1") + "/sim/stats").json()["chat_completions"]


def _rows(run: Path) -> list[tuple[str, str]]:
    db = sqlite3.connect(run / "ledger.sqlite")
    try:
        return db.execute("SELECT key, status FROM requests").fetchall()
    finally:
        db.close()


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.parametrize("recipe", ["self-instruct", "topics"])
def test_kill_9_mid_run_then_rerun_pays_nothing_twice(tmp_path, recipe):
    if recipe == "topics":
        seeds = tmp_path / "keywords.txt"
        seeds.write_text("mortgage rates\nrenting a flat\nproperty tax\nmoving house\nhome insurance\n", encoding="utf-8")
    else:
        seeds = ROOT / "examples" / "seed_tasks_en.jsonl"
    n, run = 250, tmp_path / "run"
    examples_path = run / "examples.jsonl"
    config = SimConfig(seed=5, latency_base_s=0.08, jitter_s=0.1, output_tokens=40)
    with run_simulator(config) as url:
        proc = subprocess.Popen(_command(run, url, recipe, seeds, n), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=_env())
        deadline = time.monotonic() + 60
        while _lines(examples_path) < 40:
            assert proc.poll() is None, f"generate ended before the kill: {proc.communicate()}"
            assert time.monotonic() < deadline, "no examples within 60 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
        served_at_kill, rows_at_kill = _served(url), _rows(run)
        kept_at_kill = _lines(examples_path)
        assert kept_at_kill < n, "the kill should land mid-run"

        rerun = subprocess.run(_command(run, url, recipe, seeds, n), capture_output=True, text=True, timeout=120,
                               env=_env())
        assert rerun.returncode == 0, rerun.stderr + rerun.stdout
        served_after, rows_after = _served(url), _rows(run)

    # Lost at the kill: at most the requests in flight (answered, not yet recorded).
    assert served_at_kill - len(rows_at_kill) <= CONCURRENCY
    # The rerun sent only requests the ledger did not have: none recorded before was paid again.
    assert served_after - served_at_kill == len(rows_after) - len(rows_at_kill)
    assert len({k for k, _ in rows_after}) == len(rows_after) and all(s == "done" for _, s in rows_after)
    assert {k for k, s in rows_at_kill if s == "done"} <= {k for k, _ in rows_after}
    report = ReadReport(examples_path)
    examples = read_jsonl(examples_path, Example, report)
    assert len(examples) >= n and len({e.id for e in examples}) == len(examples), "no example written twice"
    if recipe == "topics":
        questions = read_jsonl(run / "generate" / "questions.jsonl", KeptQuestion)
        assert len({q.id for q in questions}) == len(questions)
        journal = read_jsonl(run / "generate" / "requests.jsonl", JournalEntry)
        answered = [q["id"] for e in journal if e.kind == "planned" and e.stage == "answers" for q in e.meta["questions"]]
        assert len(answered) == len(set(answered)), "no question was given to two answer requests"
