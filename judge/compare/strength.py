"""Pairwise verdicts with a strength: A>>B, A>B, A=B, B>A, B>>A (Arena-Hard-Auto's labels).

The prompts are `judge/prompts/<lang>/pair_strength*.txt`: the pair templates with a five-label
verdict. The material is fenced exactly as in `judge.grading.prompts` (same nonce, same tags). A reply is
read as strictly as `judge.grading.parse` reads an A/B/tie verdict: the whole reply as JSON, else JSON
objects in prose that all agree, else `[[A>B]]` / `Verdict: A>B` markers that all agree; anything
else is `Unparsed`, never a guess. `StrengthItem` is a pair `GradingItem` that asks for, parses
and records such verdicts, so the grading machinery of `judge.grading.run` runs it unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from judge.grading.parse import Unparsed, Verdict
from judge.grading.plan import GradingItem, Outcome
from judge.grading.prompts import (
    GradingPrompt,
    _answer_turns,
    _build,
    _check_turn,
    _conversation,
    _reference_block,
    _reference_turns,
    fence,
    judge_lang,
    make_nonce,
)
from schemas import Judgment

LABELS = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
VALUE = {"A>>B": 2, "A>B": 1, "A=B": 0, "B>A": -1, "B>>A": -2}  # for the answer shown as A
PREFERENCE_NAMES = {2: "much better", 1: "better", 0: "tie", -1: "worse", -2: "much worse"}
STRENGTH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"rationale": {"type": "string"}, "verdict": {"type": "string", "enum": list(LABELS)}},
    "required": ["rationale", "verdict"],
    "additionalProperties": False,
}
# The same relation written the other way round, or a plain tie.
_ALIASES = {"A<<B": "B>>A", "A<B": "B>A", "B<A": "A>B", "B<<A": "A>>B", "B=A": "A=B", "TIE": "A=B",
            "A==B": "A=B", "A>>>B": "A>>B", "B>>>A": "B>>A"}
_MARKERS = (re.compile(r"\[\[\s*([AB][<>=]{1,3}[AB]|tie)\s*\]\]", re.IGNORECASE),
            re.compile(r"(?:verdict|판정)\s*[:：]\s*\**\s*\"?([AB]\s*[<>=]{1,3}\s*[AB])", re.IGNORECASE))


@dataclass(frozen=True)
class StrengthPrompt(GradingPrompt):
    @property
    def response_format(self) -> dict[str, Any]:
        return {"type": "json_schema",
                "json_schema": {"name": "judge_strength", "strict": True, "schema": STRENGTH_SCHEMA}}


def label_of(raw: object) -> str | None:
    if not isinstance(raw, str):
        return None
    v = re.sub(r"\s+", "", raw.strip().strip("\"'*")).upper()
    v = _ALIASES.get(v, v)
    return v if v in VALUE else None


def parse_strength(reply: str | None) -> Verdict | Unparsed:
    """A five-label verdict (in `Verdict.verdict`), or Unparsed with the reason."""
    if reply is None or not reply.strip():
        return Unparsed("empty reply", reply or "")
    text = reply.strip()
    fenced = re.fullmatch(r"```(?:json|JSON)?\s*\n?(.*?)\n?```", text, flags=re.DOTALL)
    text = fenced.group(1).strip() if fenced else text
    try:
        whole = json.loads(text, strict=False)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        label = label_of(whole.get("verdict"))
        if label is None:
            return Unparsed(f"'verdict' is {whole.get('verdict')!r}, not one of {', '.join(LABELS)}", reply[:500])
        return Verdict(label, str(whole.get("rationale", "")), "json")  # type: ignore[arg-type]
    found: list[tuple[str, str]] = []
    decoder, i = json.JSONDecoder(strict=False), text.find("{")
    while i != -1:
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            i = text.find("{", i + 1)
            continue
        if isinstance(obj, dict) and "verdict" in obj:
            label = label_of(obj["verdict"])
            if label is None:
                return Unparsed(f"embedded JSON: 'verdict' is {obj['verdict']!r}", reply[:500])
            found.append((label, str(obj.get("rationale", ""))))
        i = text.find("{", end)
    if found:
        if len({v for v, _ in found}) > 1:
            return Unparsed(f"conflicting verdicts {sorted({v for v, _ in found})}", reply[:500])
        return Verdict(found[-1][0], found[-1][1], "embedded-json")  # type: ignore[arg-type]
    for pattern in _MARKERS:
        labels = {label_of(m) for m in pattern.findall(text)}
        if labels:
            if None in labels or len(labels) > 1:
                return Unparsed(f"conflicting or unknown verdict markers {sorted(map(str, labels))}", reply[:500])
            return Verdict(labels.pop(), text, "text")  # type: ignore[arg-type]
    return Unparsed("no JSON object and no verdict marker such as [[A>B]]", reply[:500])


def preference(label: str, *, model_first: bool) -> int:
    """The verdict from the model's side: 2 much better .. -2 much worse."""
    return VALUE[label] if model_first else -VALUE[label]


@dataclass(frozen=True)
class StrengthItem(GradingItem):
    """A pair grading whose verdicts carry a strength; order 0 shows the model's answer as A."""

    @classmethod
    def from_item(cls, item: GradingItem) -> StrengthItem:
        if item.mode != "pair" or item.baseline_answer is None:
            raise ValueError("a strength verdict compares a model with a baseline (mode pair)")
        return cls(**{f.name: getattr(item, f.name) for f in fields(item)})

    def prompt(self, order: int = 0, attempt: int = 0) -> GradingPrompt:
        if order not in (0, 1):
            raise ValueError(f"order {order} does not exist for a pair")
        assert self.baseline_answer is not None
        first, second = (self.answer, self.baseline_answer) if order == 0 else (self.baseline_answer, self.answer)
        q, turn = self.question, self.turn
        _check_turn(q, turn)
        lang = judge_lang(q, self.lang)
        a, b = _answer_turns(q, first, turn), _answer_turns(q, second, turn)
        refs = _reference_turns(q, turn) if self.reference else []
        n = make_nonce([*q.turns[:turn], *a, *b, *refs], attempt)
        name = "pair_strength" + ("_reference" if self.reference else "") + ("_multi" if turn == 2 else "")
        data: dict[str, str] = {}
        if turn == 1:
            data |= {"question": fence("question", n, q.turns[0]), "answer_a": fence("answer_a", n, a[0]),
                     "answer_b": fence("answer_b", n, b[0])}
        else:
            data |= {"conversation_a": _conversation("conversation_a", n, q.turns[:turn], a),
                     "conversation_b": _conversation("conversation_b", n, q.turns[:turn], b)}
        if self.reference:
            data["reference"] = _reference_block(n, refs)
        built = _build(name, lang, "verdict", n, data, None)
        return StrengthPrompt(built.template, built.expects, built.messages, built.nonce)

    def parse(self, reply: str | None) -> Outcome:
        return parse_strength(reply)

    def judgment(self, outcomes: Sequence[Outcome], *, request_keys: Sequence[str] = (),
                 cost_usd: float | None = None) -> Judgment:
        """Scored when both orders have a verdict: the winner by the sum of both orders' preferences;
        `preferences` keeps each order's (model-first order first), `order_verdicts` the raw labels."""
        if len(outcomes) != 2:
            raise ValueError(f"a pair needs 2 outcomes, got {len(outcomes)}")
        assert self.baseline_answer is not None
        q = self.question
        common: dict[str, Any] = dict(
            question_id=q.question_id, mode="pair", turn=self.turn, model=self.answer.model,
            baseline=self.baseline_answer.model, judge_model=self.judge_model, request_keys=list(request_keys),
            cost_usd=cost_usd, reference_guided=self.reference, category=q.category, lang=q.lang, strength=True,
            order_verdicts=[o.verdict if isinstance(o, Verdict) else None for o in outcomes],
        )
        failed = [(name, o) for name, o in zip(("model-first", "baseline-first"), outcomes, strict=True)
                  if not isinstance(o, Verdict)]
        if failed:
            return Judgment(status="unscored", error="; ".join(f"{name} order {o}" for name, o in failed), **common)
        prefs = [preference(o.verdict, model_first=k == 0) for k, o in enumerate(outcomes)]  # type: ignore[union-attr]
        total = sum(prefs)
        return Judgment(
            status="scored", winner="model" if total > 0 else "baseline" if total < 0 else "tie",
            preferences=prefs, consistent=(prefs[0] > 0) == (prefs[1] > 0) and (prefs[0] < 0) == (prefs[1] < 0),
            rationale="\n".join(f"[model as {pos}] {o.rationale}" for pos, o in zip("AB", outcomes, strict=True)),  # type: ignore[union-attr]
            **common,
        )
