"""Strict reading of a judge's reply: a verdict, or `Unparsed` with the reason. Never a guess.

Order of trust:
1. The whole reply is a JSON object (what `response_format` asks for): its fields decide, and a
   wrong field makes the reply unparsed; the text inside it is not searched for other verdicts.
2. JSON objects embedded in prose (```json fences, a preamble): used when they all agree.
3. The final verdict in text: MT-Bench's `[[8]]` / `[[A]]`, `Rating: 8/10`, `Score: 8`,
   Korean `점수: 8`, `판정: A`. Matches of the first pattern that matches at all must all agree.

A score is an integer from 1 to 10. `0`, `11`, `8.5` or `7/5` are unparsed, not clamped or rounded:
the caller retries and, after its last try, records the item as unscored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

VerdictLetter = Literal["A", "B", "tie"]
Source = Literal["json", "embedded-json", "text"]


@dataclass(frozen=True)
class Score:
    score: int
    rationale: str
    source: Source


@dataclass(frozen=True)
class Verdict:
    verdict: VerdictLetter
    rationale: str
    source: Source


@dataclass(frozen=True)
class Unparsed:
    reason: str
    text: str  # the reply, cut to 500 characters, for the error column of a judgment

    def __str__(self) -> str:
        return f"unparsed: {self.reason}"


class Invalid(Exception):
    """A JSON field with the wrong type or value; carries the reason."""


def _unparsed(reason: str, text: str) -> Unparsed:
    return Unparsed(reason=reason, text=text[:500])


def _strip_fence(text: str) -> str:
    m = re.fullmatch(r"```(?:json|JSON)?\s*\n?(.*?)\n?```", text, flags=re.DOTALL)
    return m.group(1).strip() if m else text


def _embedded_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object that starts at a `{` in the text and decodes on its own."""
    decoder = json.JSONDecoder(strict=False)
    found, i = [], text.find("{")
    while i != -1:
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            i = text.find("{", i + 1)
            continue
        if isinstance(obj, dict):
            found.append(obj)
        i = text.find("{", end)
    return found


def _score_field(obj: dict[str, Any]) -> int:
    if "score" not in obj:
        raise Invalid(f"JSON object without a 'score' field (keys: {sorted(obj)})")
    v = obj["score"]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise Invalid(f"'score' is {type(v).__name__} {v!r}, not an integer")
    if isinstance(v, float) and not v.is_integer():
        raise Invalid(f"'score' {v} is not an integer")
    if not 1 <= v <= 10:
        raise Invalid(f"'score' {v} is outside 1-10")
    return int(v)


def _verdict_value(raw: str) -> VerdictLetter | None:
    v = raw.strip().strip("\"'*").strip()
    if v.upper() in ("A", "B"):
        return v.upper()  # type: ignore[return-value]
    if v.lower() in ("tie", "c", "무승부", "동점", "비김"):  # MT-Bench's text format writes a tie as [[C]]
        return "tie"
    return None


def _verdict_field(obj: dict[str, Any]) -> VerdictLetter:
    if "verdict" not in obj:
        raise Invalid(f"JSON object without a 'verdict' field (keys: {sorted(obj)})")
    v = obj["verdict"]
    letter = _verdict_value(v) if isinstance(v, str) else None
    # JSON is the structured path: only A, B or tie (any case); "C" is a text-format spelling.
    if letter is None or (isinstance(v, str) and v.strip().lower() == "c"):
        raise Invalid(f"'verdict' is {v!r}, not 'A', 'B' or 'tie'")
    return letter


def _rationale(obj: dict[str, Any]) -> str:
    r = obj.get("rationale", "")
    return r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)


_NUM = r"(-?\d+(?:\.\d+)?)"
_SCORE_PATTERNS = [
    re.compile(r"\[\[\s*" + _NUM + r"\s*(?:/\s*(\d+))?\s*\]\]"),
    re.compile(r"(?:rating|score|점수|평점|총점)\s*[:：=]\s*\**\s*\[?\s*" + _NUM + r"\s*\]?\s*(?:점)?\s*(?:/\s*(\d+))?",
               re.IGNORECASE),
]
_VERDICT_WORD = r"(A|B|C|tie|무승부|동점|비김)"
_VERDICT_PATTERNS = [
    re.compile(r"\[\[\s*" + _VERDICT_WORD + r"\s*\]\]", re.IGNORECASE),
    re.compile(r"(?:verdict|winner|판정|승자)\s*[:：=]\s*\**\s*[\"']?\s*(?:(?:answer|assistant|답변|어시스턴트)\s*)?"
               + _VERDICT_WORD + r"(?![A-Za-z0-9_])", re.IGNORECASE),
]


def _text_score(text: str) -> tuple[int | None, str]:
    """(score, "") from prose, or (None, the reason there is none)."""
    for pattern in _SCORE_PATTERNS:
        matches = pattern.findall(text)
        if not matches:
            continue
        values = set()
        for num, denominator in matches:
            if denominator and denominator != "10":
                return None, f"a score out of {denominator}, not out of 10"
            value = float(num)
            if not value.is_integer():
                return None, f"score {num} is not an integer"
            if not 1 <= value <= 10:
                return None, f"score {num} is outside 1-10"
            values.add(int(value))
        if len(values) > 1:
            return None, f"conflicting scores {sorted(values)}"
        return values.pop(), ""
    return None, "no JSON object and no score marker such as [[8]] or 'Rating: 8/10'"


def _text_verdict(text: str) -> tuple[VerdictLetter | None, str]:
    """(verdict, "") from prose, or (None, the reason there is none)."""
    for pattern in _VERDICT_PATTERNS:
        values = {_verdict_value(m) for m in pattern.findall(text)}
        if not values:
            continue
        if len(values) > 1:
            return None, f"conflicting verdicts {sorted(str(v) for v in values)}"
        return values.pop(), ""
    return None, "no JSON object and no verdict marker such as [[A]] or 'Verdict: B'"


def parse_score(reply: str | None) -> Score | Unparsed:
    """A 1-10 score from a single or reference-guided grading reply."""
    return parse_reply(reply, _score_field, _text_score, Score, key="score")  # type: ignore[return-value]


def parse_verdict(reply: str | None) -> Verdict | Unparsed:
    """'A', 'B' or 'tie' from a pairwise grading reply (positions, not models: see judge.grading.verdicts)."""
    return parse_reply(reply, _verdict_field, _text_verdict, Verdict, key="verdict")  # type: ignore[return-value]


def parse_reply(reply: str | None, field: Any, from_text: Any, result: type, *, key: str) -> Any:
    """The reading above for any verdict: `field(obj)` takes the value from a JSON object (raising
    `Invalid` for a wrong one), `from_text(text)` from prose ((None, why) when there is none), `key`
    is the field an embedded object must have to count, and `result(value, rationale, source)`."""
    if reply is None or not reply.strip():
        return _unparsed("empty reply", reply or "")
    text = _strip_fence(reply.strip())

    try:
        whole = json.loads(text, strict=False)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        try:
            return result(field(whole), _rationale(whole), "json")
        except Invalid as e:
            return _unparsed(str(e), reply)

    candidates = []
    for obj in _embedded_objects(text):
        if key not in obj:
            continue  # an object about something else
        try:
            candidates.append((field(obj), _rationale(obj)))
        except Invalid as e:
            return _unparsed(f"embedded JSON: {e}", reply)
    if candidates:
        values = {v for v, _ in candidates}
        if len(values) > 1:
            return _unparsed(f"conflicting verdicts in JSON objects {sorted(map(str, values))}", reply)
        value, rationale = candidates[-1]
        return result(value, rationale, "embedded-json")

    value, reason = from_text(text)
    if value is None:
        return _unparsed(reason, reply)
    return result(value, text, "text")
