"""Helpers of the grading and answering tests (this module holds no tests): a run folder with
answers, the simulator's counters, a scripted judge endpoint (httpx.MockTransport), and the
environment every test starts from (no real key, no real endpoint)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from judge_fakes import load_questions, make_answers

from factory.engine.ledger import Ledger
from schemas import Judgment, Question, read_jsonl, write_jsonl

JUDGE = "gpt-4o"  # priced in factory/prices.toml, so the ledger shows a cost
FAKE_URL = "http://judge.localhost/v1"  # answered in-process by httpx.MockTransport, never resolved


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No key or endpoint from the machine leaks in; tiktoken finds no BPE file (as offline)."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path_factory.mktemp("tiktoken-empty")))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))  # a stray .env in the checkout is not read


def pick_questions(n_en: int, n_ko: int = 0) -> list[Question]:
    qs = load_questions()
    return qs[:n_en] + qs[45:45 + n_ko]


def make_run(tmp_path: Path, questions: list[Question], labels: tuple[str, ...] = ("lora",),
             edit: Callable[[list[Any]], None] | None = None) -> tuple[Path, Path]:
    """A run folder with answers of `labels` (answers of label i are i+1 times as long) and the
    question file; returns (run, questions file). `edit` may change the answers before writing."""
    run = tmp_path / "runs" / "demo"
    qfile = tmp_path / "questions.jsonl"
    write_jsonl(qfile, questions)
    answers = [a for i, label in enumerate(labels) for a in make_answers(questions, label, reps=i + 1)]
    if edit is not None:
        edit(answers)
    write_jsonl(run / "eval" / "answers.jsonl", answers)
    return run, qfile


def turns_of(questions: list[Question]) -> int:
    return sum(len(q.turns) for q in questions)


def judgments(run: Path) -> list[Judgment]:
    return read_jsonl(run / "eval" / "judgments.jsonl", Judgment)


def sim_stats(url: str) -> dict[str, Any]:
    return httpx.get(url.removesuffix("/v1") + "/sim/stats").json()


def wait_for_lines(path: Path, n: int, proc: Any, timeout_s: float = 60.0) -> None:
    """Until `path` has `n` lines; fails if the process ends first or the time runs out."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the process ended early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {n} lines in {timeout_s} s")


def judge_calls(run: Path) -> list[Any]:
    with Ledger.for_run(run) as ledger:
        return list(ledger.calls(stage="judge"))


def grade_args(run: Path, qfile: Path, url: str, *extra: str, mode: str = "single") -> list[str]:
    return ["grade", "--run", str(run), "--mode", mode, "--judge-model", JUDGE, "--questions", str(qfile),
            "--base-url", url, "--no-progress", *extra]


class ScriptedJudge:
    """A chat-completions endpoint whose reply text `reply(body)` decides; keeps every body."""

    def __init__(self, reply: Callable[[dict[str, Any]], str], *, status: Callable[[dict[str, Any]], int] | None = None):
        self.reply = reply
        self.status = status or (lambda body: 200)
        self.bodies: list[dict[str, Any]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        status = self.status(body)
        if status != 200:
            return httpx.Response(status, json={"error": {"message": f"scripted {status}", "type": "server_error",
                                                          "param": None, "code": None}})
        if "probe)" in body["messages"][-1]["content"]:  # the engine asks whether json_schema replies work: yes
            return self._reply(body, '{"ok": true}')
        return self._reply(body, self.reply(body))

    def _reply(self, body: dict[str, Any], content: str) -> httpx.Response:
        return httpx.Response(200, json={
            "id": f"chatcmpl-{len(self.bodies)}", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        })

    @property
    def graded(self) -> list[dict[str, Any]]:
        """The bodies that asked for a verdict (not the engine's structured-output probe)."""
        return [b for b in self.bodies if "probe)" not in b["messages"][-1]["content"]]

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))
