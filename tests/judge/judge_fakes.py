"""Helpers of the judge tests: the shipped question sets, answers, and scripted judges that read the
grading prompt the way a real judge would (only the text inside the nonce tags)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from judge.grading.prompts import GradingPrompt
from schemas import Answer, Question, read_jsonl

ROOT = Path(__file__).resolve().parents[2]
EVALSETS = ROOT / "evalsets"


def fenced(prompt: GradingPrompt, tag: str, text: str | None = None) -> str:
    """The content of the real (nonce-suffixed) `tag` block in the prompt's user message."""
    text = prompt.messages[1]["content"] if text is None else text
    found = re.findall(rf"<{tag}-{prompt.nonce}>\n(.*?)\n</{tag}-{prompt.nonce}>", text, flags=re.DOTALL)
    assert len(found) == 1, f"expected one <{tag}-{prompt.nonce}> block, found {len(found)}"
    return found[0]


def graded_answers(prompt: GradingPrompt) -> list[str]:
    """The answer(s) under test, in position order: [answer] or [A, B]; for turn 2 the second
    assistant turn of each conversation."""
    turn2 = prompt.template.endswith("_multi")
    if prompt.expects == "score":
        if turn2:
            return [fenced(prompt, "assistant_2", fenced(prompt, "conversation"))]
        return [fenced(prompt, "answer")]
    if turn2:
        return [fenced(prompt, "assistant_2", fenced(prompt, f"conversation_{s}")) for s in "ab"]
    return [fenced(prompt, "answer_a"), fenced(prompt, "answer_b")]


Judge = Callable[[GradingPrompt], str | None]


def always_position_a(prompt: GradingPrompt) -> str:
    if prompt.expects == "verdict":
        return '{"rationale": "The first answer is better.", "verdict": "A"}'
    return '{"rationale": "Fine.", "score": 7}'


def garbage(prompt: GradingPrompt) -> str:
    return "I would rather not say. Both have merits, maybe eleven out of ten?"


def prefers_longer(prompt: GradingPrompt) -> str:
    """A position-blind judge: the longer answer wins; scores grow with length (capped at 10)."""
    answers = graded_answers(prompt)
    if prompt.expects == "score":
        return f'{{"rationale": "length-based", "score": {min(10, 1 + len(answers[0]) // 10)}}}'
    a, b = (len(x) for x in answers)
    verdict = "A" if a > b else "B" if b > a else "tie"
    return f'{{"rationale": "longer wins", "verdict": "{verdict}"}}'


def load_questions() -> list[Question]:
    return read_jsonl(EVALSETS / "en.jsonl", Question) + read_jsonl(EVALSETS / "ko.jsonl", Question)


def make_answers(questions: list[Question], model: str, reps: int) -> list[Answer]:
    """Deterministic answers; `reps` scales their length (verbosity)."""
    return [
        Answer(question_id=q.question_id, model=model,
               turns=[f"{model} answers turn {t} of {q.question_id}. " * reps for t in range(1, len(q.turns) + 1)],
               tokens=[7 * reps] * len(q.turns), latency_s=0.5)
        for q in questions
    ]
