"""Quality filters for generated examples: each has a name, which is the `reason` in rejected.jsonl.

The generate loop calls one function per example, `check(example, finish_reason, settings)`, and
gets None (keep) or a `Rejection` (drop, and why). In order of cost and certainty:

- `truncated`   the answer was cut off by max_tokens (finish_reason == "length")
- `empty`       an empty instruction, or an output of whitespace or punctuation only
- `length`      instruction, input or output outside the configured character bounds
- `no_text`     an instruction with no letter or digit (emoji or punctuation only): nothing to
                learn from, and to the near-duplicate check every such text is alike
- `placeholder` a field that is, or holds, a placeholder of the prompt: `(the instruction)`,
                `(1번 질문의 답변, ...)`, `<noinput>`, a JSON format's `"..."` (replies.py)
- `label`       a field that is a bare label (`Output:`, `[답변 2]`), or holds a label that opens a
                next task (`Instruction:` on a later line)
- `unsupported` a task a text model cannot do: look at an image, open a file, listen to audio,
                watch a video, read a graph, fetch a URL (English and Korean keywords)
- `refusal`     the model talks about itself or declines: "As an AI language model",
                "I'm sorry, but I can't", "저는 AI 언어 모델", "죄송하지만 ... 수 없습니다"
- `echo`        an output that repeats the instruction instead of answering it
- `repetition`  a degenerate loop: a phrase repeated back to back, the same line over and over
- `language`    a Korean run keeps Korean text (Hangul share of the letters), an English run English
The placeholders and labels are those of the prompt templates (replies.py's `markers_of`): the
shipped ones in both languages unless the caller gives those of its run.
`parse` (an unparseable model reply) has no example to check: `parse_rejection` records it.
`encoding` (text with a lone surrogate, such as a JSON "\\ud83d" cut from its pair, which no
UTF-8 file can hold) is caught before an example is made: `encoding_rejection` records it.
Near-duplicates (`duplicate`, `contamination`) are the deduper's (factory.quality.deduper).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from factory.quality import replies
from factory.quality.replies import (
    REASON_ECHO,
    REASON_EMPTY,
    REASON_LABEL,
    REASON_PLACEHOLDER,
    REASON_REPETITION,
    PromptMarkers,
)
from factory.quality.shingles import normalize
from schemas import Example, Rejected

REASON_PARSE = "parse"
REASON_TRUNCATED = "truncated"
REASON_LENGTH = "length"
REASON_UNSUPPORTED = "unsupported"
REASON_REFUSAL = "refusal"
REASON_LANGUAGE = "language"
REASON_NO_TEXT = "no_text"
REASON_ENCODING = "encoding"
FILTER_NAMES = (REASON_TRUNCATED, REASON_EMPTY, REASON_PLACEHOLDER, REASON_LABEL, REASON_LENGTH, REASON_NO_TEXT,
                REASON_UNSUPPORTED, REASON_REFUSAL, REASON_ECHO, REASON_REPETITION, REASON_LANGUAGE)


class FilterSettings(BaseModel):
    """Bounds and switches of the filters. Lengths are characters of the stripped text."""

    model_config = ConfigDict(extra="forbid")

    lang: Literal["ko", "en"] | None = Field(
        default=None, description="language the run keeps; None: no language filter"
    )
    min_instruction_chars: int = Field(default=5, ge=1, description="shortest instruction kept")
    max_instruction_chars: int = Field(default=2000, ge=1, description="longest instruction kept")
    max_input_chars: int = Field(default=4000, ge=0, description="longest input kept")
    min_output_chars: int = Field(default=1, ge=1, description="shortest output kept")
    max_output_chars: int = Field(default=8000, ge=1, description="longest output kept")
    min_hangul_share: float = Field(
        default=0.3, ge=0.0, le=1.0,
        description="ko runs: least share of Hangul among the letters (a syllable counts as its jamo; "
        "code and URLs not counted); low because Korean answers carry English terms",
    )
    min_latin_share: float = Field(
        default=0.8, ge=0.0, le=1.0, description="en runs: least share of Latin letters among the letters",
    )
    translation_exempt: bool = Field(
        default=True, description="do not check the output language of a translation task (its answer is in another)",
    )
    disabled: list[str] = Field(default_factory=list, description=f"filters switched off, of {list(FILTER_NAMES)}")
    extra_unsupported: list[str] = Field(
        default_factory=list, description="more words that mark a task a text model cannot do (matched in the prompt)",
    )
    extra_refusals: list[str] = Field(
        default_factory=list, description="more phrases that mark boilerplate or a refusal (matched in the output)",
    )

    @field_validator("disabled")
    @classmethod
    def _known_filters(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - set(FILTER_NAMES))
        if unknown:
            raise ValueError(f"unknown filter(s) {unknown}; the filters are {list(FILTER_NAMES)}")
        return v

    @model_validator(mode="after")
    def _bounds_ordered(self) -> FilterSettings:
        if self.min_instruction_chars > self.max_instruction_chars:
            raise ValueError("min_instruction_chars is above max_instruction_chars")
        if self.min_output_chars > self.max_output_chars:
            raise ValueError("min_output_chars is above max_output_chars")
        return self

    def enabled(self, name: str) -> bool:
        return name not in self.disabled


@dataclass(frozen=True)
class Rejection:
    """Why an example was dropped: `reason` is the filter's name, `detail` says what it saw."""

    reason: str
    detail: str

    def record(self, example: Example, request_key: str = "") -> Rejected:
        """The rejected.jsonl record of `example`."""
        key = request_key or (example.provenance.request_key if example.provenance else "")
        text = example.prompt() + "\n\n" + example.output
        return Rejected(id=example.id, reason=self.reason, detail=self.detail, text=text, request_key=key)


def parse_rejection(item_id: str, raw: str, error: str, request_key: str = "") -> Rejected:
    """The rejected.jsonl record of a model reply that did not parse into examples."""
    return Rejected(id=item_id, reason=REASON_PARSE, detail=error, text=raw, request_key=request_key)


_SURROGATE = re.compile("[\ud800-\udfff]")


def encoding_rejection(item_id: str, fields: Mapping[str, str], request_key: str = "") -> Rejected | None:
    """The rejected.jsonl record of texts holding a lone surrogate (None if there is none).
    The record shows each surrogate as its escape (\\ud83d), so that the file stays UTF-8."""
    for name, value in fields.items():
        if m := _SURROGATE.search(value):
            shown = {k: v.encode("utf-8", "backslashreplace").decode("utf-8") for k, v in fields.items()}
            return Rejected(
                id=item_id, reason=REASON_ENCODING, request_key=request_key, text="\n\n".join(v for v in shown.values() if v),
                detail=f"{name} holds a lone surrogate {ascii(m.group(0))} at character {m.start()} (half of a "
                "UTF-16 pair, as a JSON escape cut in two leaves it); fix or drop the text")
    return None


# ------------------------------------------------------------------------------------------------
# Patterns


def _words(*words: str) -> str:
    return "|".join(words)


# Tasks that need eyes, ears, a file system or a browser. A bare keyword list (Alpaca's) also
# drops "tips for taking better photos" and "how to file taxes"; so a media noun counts only when
# the task points at one ("the graph below", "an image of", "이 사진", "그림을 그려"), while
# attaching, uploading and following links count wherever they appear.
_MEDIA_EN = _words(
    r"images?", r"pictures?", r"photos?", r"photographs?", r"drawings?", r"paintings?", r"graphs?", r"charts?",
    r"diagrams?", r"flowcharts?", r"maps?", r"files?", r"pdfs?", r"spreadsheets?", r"screenshots?", r"scans?",
    r"audio", r"recordings?", r"voice messages?", r"sound clips?", r"videos?", r"clips?", r"footage",
)
_POINTER_EN = _words(
    r"a", r"an", r"the", r"this", r"that", r"these", r"those", r"attached", r"following", r"given", r"provided",
    r"above", r"below", r"uploaded", r"my", r"your", r"our", r"their",
)
_NOT_MEDIA_EN = _words(  # "a video game", "the file system": the noun is not the medium here
    r"games?", r"script", r"calls?", r"conference", r"system", r"format", r"names?", r"sharing", r"cabinet",
    r"clerk", r"editing", r"ideas?", r"titles?", r"captions?", r"descriptions?",
)
_UNSUPPORTED_EN = re.compile(
    rf"\b(?:{_POINTER_EN})\s+(?:[\w-]+\s+){{0,2}}?(?:{_MEDIA_EN})\b(?!\s+(?:{_NOT_MEDIA_EN})\b)"
    r"|\battach(?:ed|ment|ments)?\b|\bupload(?:ed|ing)?\b"
    r"|\b(?:listen to|watch|look at) (?:this|the|my|the following|the attached)\b"
    r"|\b(?:go to|visit|open|click|browse) (?:this|the following|the|that) (?:link|url|website|site|web ?page|page)\b"
    r"|\bbrowse the (?:web|internet)\b",
    re.IGNORECASE,
)
_MEDIA_KO = _words(
    r"이미지", r"사진", r"그림(?!자)", r"도표", r"그래프", r"차트", r"다이어그램", r"순서도", r"지도", r"파일(?!럿)",
    r"스크린샷", r"캡처", r"음성", r"녹음", r"오디오", r"동영상", r"영상(?!의학)", r"노래", r"음악",
)
_POINTER_KO = _words(
    r"이", r"그", r"저", r"다음", r"아래", r"위", r"위의", r"아래의", r"첨부한", r"첨부된", r"주어진", r"제공된",
    r"보낸", r"올린", r"업로드한", r"업로드된",
)
_MEDIA_ACTION_KO = _words(
    r"보고", r"보면", r"보세요", r"봐", r"분석", r"설명", r"묘사", r"요약", r"읽고", r"확인", r"참고", r"해석",
    r"만들어", r"생성", r"그려", r"그리", r"찍어", r"편집", r"재생", r"들려", r"들어", r"열어",
)
_UNSUPPORTED_KO = re.compile(
    rf"(?:^|\s)(?:{_POINTER_KO})\s+(?:\S+\s+)?(?:{_MEDIA_KO})"
    rf"|(?:{_MEDIA_KO})(?:을|를|에서|에|의|속)?\s*(?:{_MEDIA_ACTION_KO})"
    rf"|(?:{_MEDIA_KO}) ?파일"
    r"|첨부|업로드|링크(?!드인)|유튜브|(?:웹사이트|사이트|홈페이지)에 (?:접속|들어가)"
)
_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)

# The model speaking of itself as a model: boilerplate wherever it appears.
_AI_BOILERPLATE = re.compile(
    _words(
        r"\bas an ai\b", r"\bas a language model\b", r"\bas an? (?:ai )?language model\b", r"\bi am an ai\b",
        r"\bi'm an ai\b", r"\bi(?: a|')m just an ai\b", r"\bas an artificial intelligence\b",
        r"\bmy knowledge cutoff\b", r"\bmy training data\b", r"\bopenai\b",
        # SmolLM2-135M's own words (tests/fixtures/real_model)
        # ("as a chatbot developer", "as an assistant manager" are people: the model says "as a chatbot, I")
        r"\bas an? (?:text-based |ai )?(?:chatbot|ai model|ai assistant)(?:,| designed| created| trained| built)",
        r"\bas a text-based ai\b", r"\bas an? (?:[\w-]+ ){0,2}ai(?:,| designed| model| assistant| chatbot| language)", r"\bi(?: am|'m) an? (?:[\w-]+,? ){0,3}ai(?: named| designed| assistant| model| chatbot|[.,!])",
        r"\bi do(?:n'?t| not) have (?:personal )?(?:feelings|emotions|opinions|a physical body)\b(?! for)",
        r"저는 ?ai", r"ai ?언어 ?모델", r"인공지능 ?언어 ?모델", r"언어 ?모델로서", r"ai로서", r"인공지능으로서",
        r"저는 인공지능", r"저는 언어 모델", r"학습 데이터(?:에|가) (?:따르면|없)",
    ),
    re.IGNORECASE,
)
# A refusal opens with an apology or "I cannot", and says it cannot within its first sentences;
# an apology letter ("죄송하지만 회의를 미룰 수 있을까요?") opens the same way but says nothing of
# being unable.
_REFUSAL_OPENING = re.compile(
    r"^\W*(?:" + _words(
        r"i'?m sorry", r"i am sorry", r"sorry", r"i apologi[sz]e", r"unfortunately", r"i cannot", r"i can'?t",
        r"i'?m afraid", r"i am afraid",
        r"i am unable", r"i'?m unable", r"i am not able", r"i'?m not able", r"i won'?t",
        r"죄송하지만", r"죄송합니다", r"미안하지만", r"미안합니다", r"유감스럽게도", r"안타깝게도",
        r"저는 (?:그|이|해당)", r"제가 (?:그|이|해당)",
    ) + r")",
    re.IGNORECASE,
)
_INABILITY = re.compile(
    _words(
        r"\bcan(?:'|no)?t\b", r"\bcannot\b", r"\bunable to\b", r"\bnot able to\b", r"\bwon'?t be able\b",
        r"\bnot (?:allowed|permitted|appropriate)\b",
        r"\bdo(?:n'?t| not) have (?:access|the (?:ability|capability|capacity|means))\b",
        r"\bnot (?:designed|programmed|equipped) to\b",
        r"수 없", r"수가 없", r"드릴 수 없", r"어렵습니다", r"불가능합니다", r"할 수 없", r"접근할 수 없", r"제공할 수 없",
    ),
    re.IGNORECASE,
)
_REFUSAL_WINDOW = 300  # characters of the output where a refusal says it cannot
# A task that asks for an apology or a refusal gets one: "I'm sorry, but I can't attend" is then
# the answer, not the model declining.
_ASKS_FOR_APOLOGY = re.compile(r"sorry|apolog|declin|refus|reject|regret|사과|거절|사죄|양해|죄송|미안", re.IGNORECASE)

_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
_TRANSLATION = re.compile(
    r"\btranslat|\bin (?:korean|english|french|spanish|german|japanese|chinese)\b|번역|영어로|한국어로|일본어로|중국어로",
    re.IGNORECASE,
)


def _is_hangul(c: str) -> bool:
    o = ord(c)
    return 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F or 0xAC00 <= o <= 0xD7A3


def letter_shares(text: str) -> tuple[float, float, int]:
    """(Hangul share, Latin share, letters counted) of the letters of `text`.

    Letters are counted after NFD, so a Hangul syllable counts as its two or three jamo, as a
    Latin word counts its letters: "Python의 list comprehension을 설명해 주세요" is 44% Hangul
    rather than the 26% its syllables would give. Code spans and URLs are not counted (a Korean
    answer about Python is still a Korean answer).
    """
    text = unicodedata.normalize("NFD", _URL.sub(" ", _CODE.sub(" ", text)))
    hangul = latin = letters = 0
    for c in text:
        if not c.isalpha():
            continue
        letters += 1
        if _is_hangul(c):
            hangul += 1
        elif c.isascii() or 0x00C0 <= ord(c) <= 0x024F:
            latin += 1
    if letters == 0:
        return 0.0, 0.0, 0
    return hangul / letters, latin / letters, letters


# ------------------------------------------------------------------------------------------------
# The filters


def _truncated(finish_reason: str | None) -> Rejection | None:
    if finish_reason == "length":
        return Rejection(REASON_TRUNCATED, "the answer was cut off at max_tokens (finish_reason=length)")
    return None


def _length(ex: Example, s: FilterSettings, mk: PromptMarkers | None = None) -> Rejection | None:
    for field, value, lo, hi in (
        ("instruction", ex.instruction, s.min_instruction_chars, s.max_instruction_chars),
        ("input", ex.input, 0, s.max_input_chars),
        ("output", ex.output, s.min_output_chars, s.max_output_chars),
    ):
        n = len(value.strip())
        if n < lo:
            return Rejection(REASON_LENGTH, f"{field} has {n} characters, fewer than {lo}")
        if n > hi:
            return Rejection(REASON_LENGTH, f"{field} has {n} characters, more than {hi}")
    return None


def _no_text(ex: Example, s: FilterSettings, mk: PromptMarkers | None = None) -> Rejection | None:
    if not normalize(ex.instruction):
        return Rejection(REASON_NO_TEXT, "the instruction has no letter or digit (emoji or punctuation only)")
    return None


def _unsupported(ex: Example, s: FilterSettings, mk: PromptMarkers | None = None) -> Rejection | None:
    prompt = ex.prompt()
    if m := _URL.search(prompt):
        return Rejection(REASON_UNSUPPORTED, f"the task points to a URL ({m.group(0)[:60]}), which a text model cannot open")
    for pattern in (_UNSUPPORTED_EN, _UNSUPPORTED_KO):
        if m := pattern.search(prompt):
            return Rejection(REASON_UNSUPPORTED, f"the task needs what a text model cannot do: {m.group(0)!r}")
    lowered = prompt.lower()
    for word in s.extra_unsupported:
        if word.lower() in lowered:
            return Rejection(REASON_UNSUPPORTED, f"the task mentions {word!r} (extra_unsupported)")
    return None


def _refusal(ex: Example, s: FilterSettings, mk: PromptMarkers | None = None) -> Rejection | None:
    out = ex.output
    if m := _AI_BOILERPLATE.search(out):
        return Rejection(REASON_REFUSAL, f"the answer talks about being a model: {m.group(0)!r}")
    head = out[:_REFUSAL_WINDOW]
    if (
        not _ASKS_FOR_APOLOGY.search(ex.prompt())
        and (m := _REFUSAL_OPENING.search(head))
        and (n := _INABILITY.search(head))
    ):
        return Rejection(REASON_REFUSAL, f"the answer declines: opens with {m.group(0).strip()!r}, says {n.group(0)!r}")
    lowered = out.lower()
    for phrase in s.extra_refusals:
        if phrase.lower() in lowered:
            return Rejection(REASON_REFUSAL, f"the answer contains {phrase!r} (extra_refusals)")
    return None


def _language(ex: Example, s: FilterSettings, mk: PromptMarkers | None = None) -> Rejection | None:
    if s.lang is None:
        return None
    fields = [("instruction", ex.prompt())]
    if not (s.translation_exempt and _TRANSLATION.search(ex.prompt())):
        fields.append(("output", ex.output))
    for field, text in fields:
        hangul, latin, letters = letter_shares(text)
        if letters == 0:
            continue  # numbers or symbols only: nothing to judge
        if s.lang == "ko" and hangul < s.min_hangul_share:
            return Rejection(
                REASON_LANGUAGE, f"{field} is {hangul:.0%} Hangul, below min_hangul_share {s.min_hangul_share:.0%} for a ko run")
        if s.lang == "en" and latin < s.min_latin_share:
            return Rejection(
                REASON_LANGUAGE, f"{field} is {latin:.0%} Latin letters, below min_latin_share {s.min_latin_share:.0%} for an en run")
    return None


def _fields(ex: Example) -> dict[str, str]:
    return {"instruction": ex.instruction, "input": ex.input, "output": ex.output}


def _empty(ex: Example, s: FilterSettings, mk: PromptMarkers | None) -> Rejection | None:
    detail = replies.empty(ex.instruction, ex.output)
    return Rejection(REASON_EMPTY, detail) if detail else None


def _placeholder(ex: Example, s: FilterSettings, mk: PromptMarkers | None) -> Rejection | None:
    detail = replies.placeholder(_fields(ex), mk)
    return Rejection(REASON_PLACEHOLDER, detail) if detail else None


def _label(ex: Example, s: FilterSettings, mk: PromptMarkers | None) -> Rejection | None:
    detail = replies.label(_fields(ex), mk)
    return Rejection(REASON_LABEL, detail) if detail else None


def _echo(ex: Example, s: FilterSettings, mk: PromptMarkers | None) -> Rejection | None:
    detail = replies.echo(ex.instruction, ex.input, ex.output)
    return Rejection(REASON_ECHO, detail) if detail else None


def _repetition(ex: Example, s: FilterSettings, mk: PromptMarkers | None) -> Rejection | None:
    detail = replies.repetition(_fields(ex))
    return Rejection(REASON_REPETITION, detail) if detail else None


def check(example: Example, finish_reason: str | None = None, settings: FilterSettings | None = None,
          markers: PromptMarkers | None = None) -> Rejection | None:
    """The first filter that rejects `example`, or None to keep it. `markers`: the placeholders
    and labels of the prompts that produced it (None: those of the shipped templates)."""
    s = settings or FilterSettings()
    if s.enabled(REASON_TRUNCATED) and (r := _truncated(finish_reason)):
        return r
    # A placeholder or label is named before `length`: "(입력)" is too short, but what it is says more.
    for name, fn in ((REASON_EMPTY, _empty), (REASON_PLACEHOLDER, _placeholder), (REASON_LABEL, _label),
                     (REASON_LENGTH, _length), (REASON_NO_TEXT, _no_text), (REASON_UNSUPPORTED, _unsupported),
                     (REASON_REFUSAL, _refusal), (REASON_ECHO, _echo), (REASON_REPETITION, _repetition),
                     (REASON_LANGUAGE, _language)):
        if s.enabled(name) and (r := fn(example, s, markers)):
            return r
    return None


def check_fields(instruction: str, input: str, output: str, finish_reason: str | None = None,
                 settings: FilterSettings | None = None, markers: PromptMarkers | None = None,
                 ) -> tuple[Rejection | None, tuple[str, str, str]]:
    """What the generate gate decides for a candidate's raw fields, and the fields it keeps: the
    fields tidied (replies.tidy: a leading label stripped, a quoted instruction unwrapped), an
    empty field rejected as `empty`, then `check`."""
    s = settings or FilterSettings()
    fields, _ = replies.tidy(instruction, input, output, markers)
    ins, inp, out = (f.strip() for f in fields)
    if s.enabled(REASON_EMPTY) and (detail := replies.empty(ins, out)):
        return Rejection(REASON_EMPTY, detail), (ins, inp, out)
    if not ins or not out:
        return Rejection(REASON_PARSE, f"empty {'instruction' if not ins else 'output'}"), (ins, inp, out)
    return check(Example(id="-", instruction=ins, input=inp, output=out), finish_reason, s, markers), (ins, inp, out)
