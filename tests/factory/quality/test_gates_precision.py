"""The new gates (empty, placeholder, label, echo, repetition) keep what was kept before them: at
most 1% of the examples the simulator's runs keep without them, of the shipped seed tasks and of
the evaluation questions are rejected by them."""

from __future__ import annotations

from pathlib import Path

import pytest

from factory.__main__ import main
from factory.quality.filters import FilterSettings, check
from factory.quality.replies import (
    REASON_ECHO,
    REASON_EMPTY,
    REASON_LABEL,
    REASON_PLACEHOLDER,
    REASON_REPETITION,
)
from factory.simulator import SimConfig, run_simulator
from schemas import Example, Question, SeedTask, read_jsonl

ROOT = Path(__file__).resolve().parents[3]
NEW = [REASON_EMPTY, REASON_PLACEHOLDER, REASON_LABEL, REASON_ECHO, REASON_REPETITION]
MAX_SHARE = 0.01
ONLY_NEW = FilterSettings(disabled=["truncated", "length", "no_text", "unsupported", "refusal", "language"])


def rejected_by_new_gates(examples: list[Example], *, question: bool = False) -> list[tuple[str, str]]:
    """(id, detail) of each example the new gates reject. A question alone (no answer) is checked
    as the gate checks questions: not for echo (its probe's output is the question itself)."""
    settings = ONLY_NEW.model_copy(update={"disabled": [*ONLY_NEW.disabled, REASON_ECHO]}) if question else ONLY_NEW
    out = []
    for e in examples:
        if r := check(e, None, settings):
            out.append((e.id, f"{r.reason}: {r.detail}"))
    return out


def assert_few(rejected: list[tuple[str, str]], total: int) -> None:
    assert total > 0
    print(f"new gates rejected {len(rejected)} of {total} ({len(rejected) / total:.2%})", *rejected[:5], sep="\n  ")
    assert len(rejected) <= MAX_SHARE * total, f"{len(rejected)} of {total} rejected: {rejected[:10]}"


def test_the_shipped_seed_tasks_pass() -> None:
    examples = []
    for path in sorted((ROOT / "examples").glob("seed_tasks_*.jsonl")):
        for t in read_jsonl(path, SeedTask):
            for k, inst in enumerate(t.instances):
                examples.append(Example(id=f"{t.id}-{k}", instruction=t.instruction, input=inst.input, output=inst.output))
    assert len(examples) >= 40
    assert_few(rejected_by_new_gates(examples), len(examples))


def test_the_evaluation_questions_pass() -> None:
    examples = []
    for path in sorted((ROOT / "evalsets").glob("*.jsonl")):
        for q in read_jsonl(path, Question):
            for k, turn in enumerate(q.turns):
                examples.append(Example(id=f"{q.question_id}-{k}", instruction=turn, output=turn))
    assert len(examples) >= 180
    assert_few(rejected_by_new_gates(examples, question=True), len(examples))


@pytest.fixture(scope="module")
def sim() -> str:
    with run_simulator(SimConfig(seed=11, output_tokens=120)) as url:
        yield url


# The simulator answers in JSON (structured output); it does not write the text formats.
@pytest.mark.parametrize("recipe, seeds, n", [
    ("self-instruct", "examples/seed_tasks_en.jsonl", 300),
    ("self-instruct", "examples/seed_tasks_ko.jsonl", 300),
    ("topics", "examples/keywords_ko.txt", 200),
])
def test_what_the_simulator_runs_kept_before_the_new_gates_passes_them(
        tmp_path: Path, sim: str, recipe: str, seeds: str, n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123")
    config = tmp_path / "gen.toml"
    config.write_text(f"[filters]\ndisabled = {NEW!r}\n".replace("'", '"'), encoding="utf-8")
    run = tmp_path / "run"
    code = main(["generate", "--run", str(run), "--recipe", recipe, "--seeds", str(ROOT / seeds), "--n", str(n),
                 "--base-url", sim, "--model", "gpt-4o-mini", "--config", str(config),
                 "--no-progress"])
    assert code == 0
    kept = read_jsonl(run / "examples.jsonl", Example)
    assert len(kept) >= n
    assert_few(rejected_by_new_gates(kept), len(kept))
