"""The curation rubric: four criteria graded 1-5 and an overall grade in half points, the prompt
that asks for them (judge/prompts/<lang>/curate.txt, editable like every judge template), the JSON
schema that constrains the reply where the server takes one, and the strict reading of a reply.

A reply is read as the judge's replies are (judge.grading.parse): a JSON object with every field
right, or JSON objects in prose that agree; anything else is unreadable and the example is asked
again, then recorded unscored. A grade is never guessed, clamped or rounded: 4.3, 6 or a missing
criterion make the reply unreadable.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from judge.grading.parse import Invalid, Unparsed, parse_reply
from judge.errors import PromptError
from judge.grading.prompts import GradingPrompt, fence, load_template, make_nonce
from schemas import Example

RUBRIC_VERSION = "v1"  # change it with the template's meaning: a new version is a new curation
CRITERIA = ("accuracy", "helpfulness", "clarity", "language_fit")
OVERALL = tuple(x / 2 for x in range(2, 11))  # 1.0, 1.5, ..., 5.0
TEMPLATE = "curate"
LANGUAGE_NAMES = {"en": "English", "ko": "Korean (한국어)"}

GRADE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string"},  # first: a model writing in order reasons before it grades
        **{c: {"type": "integer", "enum": [1, 2, 3, 4, 5]} for c in CRITERIA},
        "overall": {"type": "number", "enum": list(OVERALL)},
    },
    "required": ["rationale", *CRITERIA, "overall"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Marks:
    """The numbers of one grade (hashable, so that agreeing JSON objects in prose can be compared)."""

    overall: float
    criteria: tuple[tuple[str, int], ...]

    def __str__(self) -> str:
        return f"overall {self.overall:g} ({', '.join(f'{c} {v}' for c, v in self.criteria)})"


@dataclass(frozen=True)
class Grade:
    marks: Marks
    rationale: str
    source: str  # json | embedded-json


def example_lang(example: Example) -> str:
    """The language of the prompt and the rationale: the example's, else Korean when Hangul is a
    real part of its letters, else English."""
    if example.lang in LANGUAGE_NAMES:
        return example.lang
    text = example.instruction + example.output
    hangul = sum(1 for c in text if "\uac00" <= c <= "\ud7a3")
    latin = sum(1 for c in text if c.isascii() and c.isalpha())
    return "ko" if hangul and hangul / (hangul + latin) >= 0.3 else "en"


def example_digest(example: Example) -> str:
    """A hash of what is graded: a score line whose example changed since is not that example's."""
    h = hashlib.sha256(json.dumps([example.system, example.instruction, example.input, example.output],
                                  ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()[:16]


class CurationPrompt(GradingPrompt):
    """A grading prompt whose structured reply is the rubric's object."""

    @property
    def response_format(self) -> dict[str, Any]:
        return {"type": "json_schema",
                "json_schema": {"name": f"curate_{RUBRIC_VERSION}", "strict": True, "schema": GRADE_SCHEMA}}


def curation_prompt(example: Example, *, lang: str | None = None, attempt: int = 0) -> CurationPrompt:
    """The messages that ask for one example's grade; every text of the example is fenced by a
    nonce tag (judge.grading.prompts), and the nonce changes with `attempt`."""
    lang = lang or example_lang(example)
    parts = [example.system, example.instruction, example.input, example.output]
    nonce = make_nonce(parts, attempt)
    blocks = []
    if example.system:
        blocks.append(fence("system", nonce, example.system))
    blocks.append(fence("instruction", nonce, example.instruction))
    if example.input:
        blocks.append(fence("input", nonce, example.input))
    blocks.append(fence("response", nonce, example.output))
    template = load_template(TEMPLATE, lang)
    missing = [f for f in (*CRITERIA, "overall") if f'"{f}"' not in template.system + template.user]
    if missing:
        raise PromptError(f"{template.path} never names the rubric's field(s) {', '.join(missing)}: the judge "
                          "could not know to reply with them; restore them in the reply's JSON object "
                          f"(the fields are {', '.join((*CRITERIA, 'overall'))})")
    system, user = template.render({"nonce": nonce, "language": LANGUAGE_NAMES[lang], "example": "\n\n".join(blocks)})
    return CurationPrompt(template=f"{lang}/{TEMPLATE}", expects="grade", nonce=nonce,
                          messages=[{"role": "system", "content": system}, {"role": "user", "content": user}])


def _marks(obj: dict[str, Any]) -> Marks:
    missing = [k for k in (*CRITERIA, "overall") if k not in obj]
    if missing:
        raise Invalid(f"JSON object without {', '.join(repr(k) for k in missing)} (keys: {sorted(obj)})")
    criteria = []
    for c in CRITERIA:
        v = obj[c]
        if isinstance(v, bool) or not isinstance(v, int | float) or not float(v).is_integer() or not 1 <= v <= 5:
            raise Invalid(f"{c!r} is {v!r}, not an integer from 1 to 5")
        criteria.append((c, int(v)))
    overall = obj["overall"]
    if isinstance(overall, bool) or not isinstance(overall, int | float) or float(overall) not in OVERALL:
        raise Invalid(f"'overall' is {overall!r}, not 1 to 5 in half points")
    return Marks(float(overall), tuple(criteria))


def _no_text_grade(text: str) -> tuple[None, str]:
    return None, "no JSON object with the rubric's fields (accuracy, helpfulness, clarity, language_fit, overall)"


def parse_grade(reply: str | None) -> Grade | Unparsed:
    """The grade in a reply, or `Unparsed` with the reason."""
    return parse_reply(reply, _marks, _no_text_grade, Grade, key="overall")


__all__ = ["CRITERIA", "GRADE_SCHEMA", "OVERALL", "RUBRIC_VERSION", "CurationPrompt", "Grade", "Marks",
           "curation_prompt", "example_digest", "example_lang", "parse_grade"]
