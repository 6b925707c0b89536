"""Grading messages: prompt templates from files, the material under test fenced by nonce tags.

Templates live in `judge/prompts/<lang>/<name>.txt`, one `--- system ---` and one `--- user ---`
section each, with `{{placeholders}}`. The code, not the template, fences every piece of data (the
question, the reference, each answer or conversation) in tags such as `<answer-3f9c0e1a7b2d4c65>`.
The suffix is a hash of the data itself, so an answer cannot contain its own closing tag: to forge it
the answer would have to know a hash of text that includes the forgery. Substitution is one pass, so
a `{{placeholder}}` written inside an answer stays literal text.

The nonce is deterministic (same data and attempt -> same messages) so the engine's ledger can
recognise a request it already paid for; `attempt` changes it, so a retry after an unparseable
verdict is a new request rather than the cached bad one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from judge.errors import PromptError
from schemas import Answer, Question

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"  # judge/prompts/<lang>/<name>.txt
LANGS = ("en", "ko")
Expects = Literal["score", "verdict", "grade"]  # grade: a training example's (judge.curation)

# Structured output, sent as `response_format` where the endpoint supports it. `rationale` comes
# first so that a model writing fields in order reasons before it commits to a number.
SCORE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string"},
        "score": {"type": "integer", "enum": list(range(1, 11))},
    },
    "required": ["rationale", "score"],
    "additionalProperties": False,
}
VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string"},
        "verdict": {"type": "string", "enum": ["A", "B", "tie"]},
    },
    "required": ["rationale", "verdict"],
    "additionalProperties": False,
}


def response_format(expects: Expects) -> dict[str, Any]:
    """The OpenAI `response_format` value (json_schema, strict) for a score or a pair verdict."""
    schema = SCORE_SCHEMA if expects == "score" else VERDICT_SCHEMA
    return {
        "type": "json_schema",
        "json_schema": {"name": f"judge_{expects}", "strict": True, "schema": schema},
    }


_SECTION = re.compile(r"^--- (system|user) ---[ \t]*$", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@dataclass(frozen=True)
class Template:
    name: str
    lang: str
    path: Path
    system: str
    user: str

    @property
    def placeholders(self) -> set[str]:
        return set(_PLACEHOLDER.findall(self.system)) | set(_PLACEHOLDER.findall(self.user))

    def render(self, values: Mapping[str, str]) -> tuple[str, str]:
        """(system, user) with every placeholder replaced in a single pass.

        Every placeholder must have a value and every value must be used: a template that forgot
        `{{answer}}` would otherwise grade an answer it never showed.
        """
        missing = self.placeholders - values.keys()
        unused = values.keys() - self.placeholders
        if missing or unused:
            raise PromptError(
                f"{self.path}: placeholders {sorted(self.placeholders)} do not match the data "
                f"(missing values: {sorted(missing)}, not in the template: {sorted(unused)})"
            )

        def sub(text: str) -> str:
            return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)

        return sub(self.system), sub(self.user)


def template_path(name: str, lang: str, prompts_dir: Path | None = None) -> Path:
    return (prompts_dir or PROMPTS_DIR) / lang / f"{name}.txt"


@lru_cache(maxsize=64)
def _load(path: Path, name: str, lang: str) -> Template:
    if not path.is_file():
        raise PromptError(f"no prompt template {path}; write it or pick a language among {LANGS}")
    text = path.read_text(encoding="utf-8")
    parts = _SECTION.split(text)
    # split gives ["preamble", "system", body, "user", body]
    if len(parts) != 5 or parts[1] != "system" or parts[3] != "user" or parts[0].strip():
        raise PromptError(f"{path}: a template is a '--- system ---' section, then a '--- user ---' section")
    return Template(name=name, lang=lang, path=path, system=parts[2].strip(), user=parts[4].strip())


def load_template(name: str, lang: str, prompts_dir: Path | None = None) -> Template:
    return _load(template_path(name, lang, prompts_dir), name, lang)


def make_nonce(parts: Sequence[str], attempt: int = 0) -> str:
    """16 hex digits from a hash of the data, never a substring of it."""
    for salt in range(1000):
        h = hashlib.sha256(f"judge-nonce/{attempt}/{salt}".encode())
        for p in parts:
            raw = p.encode("utf-8")
            h.update(len(raw).to_bytes(8, "big"))  # length-prefixed: ("ab","c") != ("a","bc")
            h.update(raw)
        nonce = h.hexdigest()[:16]
        if not any(nonce in p for p in parts):
            return nonce
    raise PromptError("could not find a delimiter nonce absent from the data")  # never in practice


def fence(tag: str, nonce: str, text: str) -> str:
    return f"<{tag}-{nonce}>\n{text}\n</{tag}-{nonce}>"


def _conversation(tag: str, nonce: str, questions: Sequence[str], answers: Sequence[str]) -> str:
    inner = []
    for i, (q, a) in enumerate(zip(questions, answers, strict=True), start=1):
        inner.append(fence(f"user_{i}", nonce, q))
        inner.append(fence(f"assistant_{i}", nonce, a))
    return fence(tag, nonce, "\n".join(inner))


@dataclass(frozen=True)
class GradingPrompt:
    """The messages of one grading request and what its reply must contain."""

    template: str  # "ko/pair_multi"
    expects: Expects
    messages: list[dict[str, str]]
    nonce: str

    @property
    def response_format(self) -> dict[str, Any]:
        return response_format(self.expects)

    def params(self, *, structured: bool = True, max_tokens: int = 512) -> dict[str, Any]:
        """Request parameters: greedy, short, and the json_schema when the endpoint takes one."""
        params: dict[str, Any] = {"temperature": 0.0, "max_tokens": max_tokens}
        if structured:
            params["response_format"] = self.response_format
        return params


def judge_lang(question: Question, lang: str | None = None) -> str:
    """The prompt language: the one asked for, else the question's, else English."""
    chosen = lang or question.lang or "en"
    if chosen not in LANGS:
        raise PromptError(f"question {question.question_id}: no judge prompts in language {chosen!r}; use one of {LANGS}")
    return chosen


def _check_turn(question: Question, turn: int) -> None:
    if turn not in (1, 2):
        raise PromptError(f"question {question.question_id}: turn {turn} cannot be graded; turns are 1 or 2 (MT-Bench format)")
    if turn > len(question.turns):
        raise PromptError(f"question {question.question_id} has {len(question.turns)} turn(s); turn {turn} does not exist")


def _answer_turns(question: Question, answer: Answer, turn: int) -> list[str]:
    if answer.question_id != question.question_id:
        raise PromptError(f"answer for question {answer.question_id} paired with question {question.question_id}")
    if len(answer.turns) < turn:
        raise PromptError(
            f"model {answer.model!r} answered {len(answer.turns)} turn(s) of question {question.question_id}; "
            f"turn {turn} needs an answer to every turn up to it (regenerate its answers)"
        )
    return answer.turns[:turn]


def _reference_turns(question: Question, turn: int) -> list[str]:
    ref = question.reference or []
    if len(ref) < turn or not all(r.strip() for r in ref[:turn]):
        raise PromptError(
            f"question {question.question_id} has no reference answer for turn {turn}; "
            "grade it without a reference (mode single) or add the reference to the question file"
        )
    return list(ref[:turn])


def _reference_block(nonce: str, refs: list[str]) -> str:
    if len(refs) == 1:
        return fence("reference", nonce, refs[0])
    return "\n\n".join(fence(f"reference_{i}", nonce, r) for i, r in enumerate(refs, start=1))


def _build(name: str, lang: str, expects: Expects, nonce: str, data: dict[str, str],
           prompts_dir: Path | None) -> GradingPrompt:
    template = load_template(name, lang, prompts_dir)
    system, user = template.render({"nonce": nonce, **data})
    return GradingPrompt(
        template=f"{lang}/{name}",
        expects=expects,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
        nonce=nonce,
    )


def single_prompt(question: Question, answer: Answer, *, turn: int = 1, reference: bool = False,
                  lang: str | None = None, attempt: int = 0, prompts_dir: Path | None = None) -> GradingPrompt:
    """A 1-10 grading of `answer` on `turn` (turn 2 shows the whole conversation); with the
    reference answer when `reference` is true (reference-guided grading)."""
    _check_turn(question, turn)
    lang = judge_lang(question, lang)
    answers = _answer_turns(question, answer, turn)
    refs = _reference_turns(question, turn) if reference else []
    n = make_nonce([*question.turns[:turn], *answers, *refs], attempt)
    name = ("reference" if reference else "single") + ("_multi" if turn == 2 else "")
    data: dict[str, str] = {}
    if turn == 1:
        data["question"] = fence("question", n, question.turns[0])
        data["answer"] = fence("answer", n, answers[0])
    else:
        data["conversation"] = _conversation("conversation", n, question.turns[:turn], answers)
    if reference:
        data["reference"] = _reference_block(n, refs)
    return _build(name, lang, "score", n, data, prompts_dir)


def pair_prompt(question: Question, answer_a: Answer, answer_b: Answer, *, turn: int = 1, reference: bool = False,
                lang: str | None = None, attempt: int = 0, prompts_dir: Path | None = None) -> GradingPrompt:
    """An A/B/tie comparison of two answers on `turn`, in this order (see `pair_prompts` for both)."""
    _check_turn(question, turn)
    lang = judge_lang(question, lang)
    a = _answer_turns(question, answer_a, turn)
    b = _answer_turns(question, answer_b, turn)
    refs = _reference_turns(question, turn) if reference else []
    n = make_nonce([*question.turns[:turn], *a, *b, *refs], attempt)
    name = "pair" + ("_reference" if reference else "") + ("_multi" if turn == 2 else "")
    data: dict[str, str] = {}
    if turn == 1:
        data["question"] = fence("question", n, question.turns[0])
        data["answer_a"] = fence("answer_a", n, a[0])
        data["answer_b"] = fence("answer_b", n, b[0])
    else:
        data["conversation_a"] = _conversation("conversation_a", n, question.turns[:turn], a)
        data["conversation_b"] = _conversation("conversation_b", n, question.turns[:turn], b)
    if reference:
        data["reference"] = _reference_block(n, refs)
    return _build(name, lang, "verdict", n, data, prompts_dir)


def pair_prompts(question: Question, model_answer: Answer, baseline_answer: Answer, **kwargs: Any
                 ) -> tuple[GradingPrompt, GradingPrompt]:
    """Both orders of one comparison: (model as A, baseline as B), then (baseline as A, model as B).

    Feed the two parsed verdicts, in this order, to `judge.grading.verdicts.pair_judgment`.
    """
    return (pair_prompt(question, model_answer, baseline_answer, **kwargs),
            pair_prompt(question, baseline_answer, model_answer, **kwargs))
