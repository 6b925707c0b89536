"""Gates for what real models write wrong in a reply, found in real output (tests/fixtures/real_model).

A small or careless model copies the prompt instead of following it: it fills a field with the
format's own placeholder (`(the instruction)`, `(1번 질문의 답변)`), leaves a label in the text
(`Instruction:`, `[Answer 2]`), answers by repeating the question, falls into a loop, or writes
nothing. filters.py calls these as named reasons:

- `empty`        an instruction or output of whitespace, or an output of punctuation only (`""`, `...`)
- `placeholder`  a field that is, or holds, a placeholder of the prompt that was sent: a bracketed
                 group of its format or example sections, a quoted value of its JSON format, a
                 literal `{{name}}`
- `label`        a field that is a bare label (`Output:`, `Task 3`, `[답변 2]`), or that holds a
                 label that opens a new task (`Instruction:` on a later line: the model wrote on)
- `echo`         an output that repeats the instruction instead of answering it
- `repetition`   a degenerate loop: a phrase repeated back to back, or the same line again and again

The placeholders and labels come from the prompt templates (`markers_of`): by default those
shipped in factory/prompts in both languages; a run adds the templates it actually used.
`tidy` is the repair the gate makes before these checks: a leading label is stripped, and an
instruction wrapped in quotes is unwrapped (with its input and output, when they are wrapped too).
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from factory.quality.shingles import jaccard, normalize, shingle_sets

REASON_EMPTY = "empty"
REASON_PLACEHOLDER = "placeholder"
REASON_LABEL = "label"
REASON_ECHO = "echo"
REASON_REPETITION = "repetition"

# --------------------------------------------------------------------------------------------
# What a prompt's templates hold: placeholders and labels


def _key(text: str) -> str:
    """A placeholder's comparable form: NFKC, lowercase, digits as '#', spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"\s+", " ", re.sub(r"\d+", "#", text)).strip(" :;,")


def _variants(key: str) -> set[str]:
    """A key as a model varies it: "the instructions", "instruction", "your instruction"."""
    out = {key, key.removesuffix("s")}
    for article in ("the ", "a ", "an ", "your "):
        if key.startswith(article):
            out |= {key[len(article):], key[len(article):].removesuffix("s")}
    return out


@dataclass(frozen=True)
class PromptMarkers:
    """The placeholders (by `_key`) and field labels (lowercase words) of a set of templates."""

    bracketed: frozenset[str]  # contents of (...) and <...> groups: "the instruction", "#번 질문의 답변"
    quoted: frozenset[str]     # string values of the JSON format examples: "...", "질문", "키워드"
    labels: frozenset[str]     # "instruction", "input", "output", "지시문", "answer", "키워드", ...

    def __or__(self, other: PromptMarkers) -> PromptMarkers:
        return PromptMarkers(self.bracketed | other.bracketed, self.quoted | other.quoted, self.labels | other.labels)

    def is_bracketed(self, text: str) -> bool:
        return bool(_variants(_key(text)) & self._loose(self.bracketed))

    def is_quoted(self, text: str) -> bool:
        return bool(_variants(_key(text)) & self._loose(self.quoted | self.bracketed))

    @staticmethod
    @lru_cache(maxsize=32)
    def _loose(keys: frozenset[str]) -> frozenset[str]:
        return frozenset().union(*map(_variants, keys)) if keys else frozenset()


_BRACKET = re.compile(r"\(([^()\n]{1,80})\)|<([^<>\n]{1,40})>|\[([^\[\]\n]{1,40})\]")
_JSON_STRING = re.compile(r'"([^"\n]{1,60})"\s*[,}\]]')
_LABEL_LINE = re.compile(r"^[ \t]*(?:\d+[ \t]*[.)][ \t]*)?([^\W\d_][^\W\d_ ]*)[ \t]*[:：]", re.MULTILINE)
_HEADER_LINE = re.compile(r"^[ \t]*\[?[ \t]*([^\W\d_]+)[ \t]*(?:\d+|\{\{\w+\}\})?[ \t]*\]?[ \t]*$", re.MULTILINE)
# Names the recipes' parsers also read as field labels, beyond those the templates write.
_LABEL_SYNONYMS = ("instructions", "task", "response", "지시", "명령", "명령문", "응답", "답")


def markers_of(templates: Iterable[Mapping[str, str]]) -> PromptMarkers:
    """The placeholders and labels of prompt templates, each given as its sections
    (`Template.sections`: {"user": ..., "format:text": ..., "example": ...})."""
    bracketed: set[str] = set()
    quoted: set[str] = set()
    labels: set[str] = set(_LABEL_SYNONYMS)
    square: set[str] = set()
    for sections in templates:
        for name, body in sections.items():
            if name == "system":
                continue
            for m in _BRACKET.finditer(body):
                inner = m.group(1) or m.group(2) or m.group(3)
                if "{{" not in inner:
                    (square if m.group(3) else bracketed).add(_key(inner))
            if name.startswith("format:json"):
                quoted.update(_key(v) for v in _JSON_STRING.findall(body) if v.strip())
            if name.startswith("format:text") or name == "example":
                labels.update(m.group(1).lower() for m in _LABEL_LINE.finditer(body))
                labels.update(m.group(1).lower() for m in _HEADER_LINE.finditer(body) if m.group(1).strip())
    labels.discard("")
    # "[Answer 1]", "[keyword]" are the format's labels (the `label` gate); "[답변 번호]" is a placeholder
    bracketed |= {k for k in square if k.replace("#", "").strip() not in labels}
    return PromptMarkers(frozenset(bracketed), frozenset(quoted), frozenset(labels))


@lru_cache(maxsize=1)
def default_markers() -> PromptMarkers:
    """Every placeholder and label of the templates shipped in factory/prompts, in both languages."""
    from factory.recipes.templates import (  # a leaf module: no cycle
        LANGS,
        PROMPTS_DIR,
        load_template,
    )

    names = sorted({p.stem for lang in LANGS for p in (PROMPTS_DIR / lang).glob("*.txt")})
    return markers_of(load_template(n, lang).sections for lang in LANGS for n in names)


# --------------------------------------------------------------------------------------------
# Repairs: leading labels and wrapping quotes


_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’", "«": "»", "「": "」", "『": "』", "`": "`"}
_MARKUP = "*_# \t"


def _label_pattern(labels: Iterable[str]) -> re.Pattern[str]:
    words = "|".join(sorted(map(re.escape, labels), key=len, reverse=True))
    # "1. Instruction:", "**Output:**", "### Input：", "Task 3:" ; the label word, then a colon
    return re.compile(
        rf"^[ \t]*(?:#+[ \t]*)?(?:\d+[ \t]*[.)][ \t]*)?[*_]{{0,2}}[ \t]*({words})(?:[ \t]*\d+)?[ \t]*[*_]{{0,2}}"
        rf"[ \t]*[:：][ \t]*[*_]{{0,2}}[ \t]*", re.IGNORECASE)


@lru_cache(maxsize=16)
def _patterns(markers: PromptMarkers) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """(leading label, bare label, label that opens a new task on a later line) for `markers`."""
    words = "|".join(sorted(map(re.escape, markers.labels), key=len, reverse=True))
    # A label is a label word with a colon, in brackets, or a task header with its number; one
    # word alone ("Output") may be an answer. Separators (###, ---) are left-over format too.
    bare = re.compile(
        rf"^\s*[*_#]*\s*(?:\d+[ \t]*[.)][ \t]*)?[*_]{{0,2}}[ \t]*(?:"
        rf"[\[【(][ \t]*(?:{words})[ \t]*\d*[ \t]*[\]】)][ \t]*[:：]?"
        rf"|(?:{words})[ \t]*\d*[ \t]*[*_]{{0,2}}[ \t]*[:：]"
        rf"|(?:task|과제)[ \t]*\d+"
        rf"|#{{2,}}|-{{3,}}|\*{{3,}}"
        rf")[\s*_#.:]*$", re.IGNORECASE)
    opens_task = re.compile(
        r"^[ \t]*(?:#+[ \t]*)?(?:\d+[ \t]*[.)][ \t]*)?[*_]{0,2}(?:instructions?|지시문|지시)[ \t]*[*_]{0,2}[ \t]*[:：]"
        r"|^[ \t]*(?:#+[ \t]*)?[*_]{0,2}[\[【][ \t]*(?:answer|답변)[ \t]*\d+[ \t]*[\]】][*_]{0,2}[ \t]*$"
        r"|^[ \t]*(?:#+[ \t]*)?[*_]{0,2}(?:task|과제)[ \t]*\d+[ \t]*[*_]{0,2}[ \t]*$",
        re.IGNORECASE)
    return _label_pattern(markers.labels), bare, opens_task


def _unwrapped(text: str) -> str | None:
    """`text` without the quotes that wrap it whole, or None if it is not so wrapped (a text that
    only starts and ends with quoted parts, `"A" or "B"`, is not)."""
    s = text.strip()
    if len(s) < 3 or s[0] not in _QUOTES or s[-1] != _QUOTES[s[0]]:
        return None
    inner = s[1:-1]
    if s[0] in inner or _QUOTES[s[0]] in inner:
        return None
    return inner.strip() or None


def tidy(instruction: str, input: str, output: str, markers: PromptMarkers | None = None
         ) -> tuple[tuple[str, str, str], list[str]]:
    """The fields with a leading label stripped and wrapping quotes removed, and what was done.

    A label at the start of a field (`Instruction: Name three rivers.`) is the format showing
    through: the rest is the text. Quotes around a whole instruction are the model quoting its
    own task; its input and output are then unwrapped too when they are wrapped. Quotes around an
    output alone are kept: the task may ask for a quotation.
    """
    lead, _, _ = _patterns(markers or default_markers())
    fields = [instruction, input, output]
    done: list[str] = []
    for i, name in enumerate(("instruction", "input", "output")):
        m = lead.match(fields[i])
        if m and fields[i][m.end():].strip():
            done.append(f"stripped the label {m.group(0).strip()!r} from the {name}")
            fields[i] = fields[i][m.end():].strip()
    if (inner := _unwrapped(fields[0])) is not None:
        fields[0] = inner
        done.append("unwrapped the quotes around the instruction")
        for i, name in ((1, "input"), (2, "output")):
            if (inner := _unwrapped(fields[i])) is not None:
                fields[i] = inner
                done.append(f"unwrapped the quotes around the {name}")
    return (fields[0], fields[1], fields[2]), done


# --------------------------------------------------------------------------------------------
# The checks: each gives a detail that says what it saw, or None


def _has_content(text: str) -> bool:
    return any(c.isalnum() or unicodedata.category(c) == "So" for c in text)


def empty(instruction: str, output: str) -> str | None:
    if not instruction.strip():
        return "the instruction is empty"
    if not output.strip():
        return "the output is empty (whitespace only)" if output else "the output is empty"
    if not _has_content(output):
        return f"the output has no letter, digit or symbol: {output.strip()[:40]!r}"
    return None


_LIST_MARK = re.compile(r"^\s*(?:[-*•·]|\d+[.)]|#+)?\s*")


def _bare(text: str) -> str:
    """A field or line without list markers, markup and the quotes that wrap it."""
    s = _LIST_MARK.sub("", text.strip()).strip(_MARKUP)
    return _unwrapped(s) or s


def placeholder(fields: Mapping[str, str], markers: PromptMarkers | None = None) -> str | None:
    """A field that is a placeholder of the prompt, or holds one on a line of its own or as the
    head of a bracketed group (`(1번 질문의 답변, 2024-69)`). A single-word placeholder counts only
    in its brackets or quotes: a bare "질문" may be the answer to "translate 'question'"."""
    mk = markers or default_markers()
    lead, _, _ = _patterns(mk)
    for name, value in fields.items():
        if m := re.search(r"\{\{\s*\w+\s*\}\}", value):
            return f"the {name} holds the template placeholder {m.group(0)!r}"
        for line in value.splitlines() or [value]:
            raw = line.strip()
            if not raw:
                continue
            body = raw[lead.match(raw).end():] if lead.match(raw) else raw  # "Output: (the output)"
            bare = _bare(body)
            quoted = _unwrapped(_LIST_MARK.sub("", body.strip()).strip(_MARKUP))
            if quoted is not None and mk.is_quoted(quoted):
                return f"the {name} is the prompt's example value {raw[:60]!r}"
            whole = _BRACKET.fullmatch(bare)
            if whole and mk.is_bracketed(whole.group(1) or whole.group(2) or whole.group(3)):
                return f"the {name} is the prompt's placeholder {raw[:60]!r}"
            if " " in bare.strip() and mk.is_quoted(bare):
                return f"the {name} is the prompt's placeholder {raw[:60]!r}"
        if (m := _BRACKET.match(value.lstrip())) and mk.is_bracketed(m.group(1) or m.group(2) or m.group(3)):
            return f"the {name} starts with the prompt's placeholder {m.group(0)!r}"  # "(question) How do I ..."
        for m in _BRACKET.finditer(value):
            inner = _key(m.group(1) or m.group(2) or m.group(3))
            for p in mk.bracketed:
                # "(1번 질문의 답변, 2024-69)": the placeholder, then what the model added to it
                if len(p) >= 8 and " " in p and (inner == p or inner.startswith((p + ",", p + ";", p + " -"))):
                    return f"the {name} holds the prompt's placeholder {m.group(0)[:60]!r}"
    return None


_LEADING_BRACKET = re.compile(r"^\s*[\[【(]([^\[\]【】()\n]{1,30})[\]】)]")


def label(fields: Mapping[str, str], markers: PromptMarkers | None = None) -> str | None:
    """A field that is a bare label, or holds a line that opens a new task (the model went on
    writing the next task into this one). `Input:`/`Output:` lines inside a text are kept: a
    coding task shows examples that way."""
    _, bare, opens_task = _patterns(markers or default_markers())
    mk = markers or default_markers()
    for name, value in fields.items():
        if value.strip() and bare.match(value):
            return f"the {name} is a bare label {value.strip()[:40]!r}"
        if (m := _LEADING_BRACKET.match(value)) and m.group(1).strip().lower().rstrip("0123456789 ") in mk.labels:
            return f"the {name} starts with the format's label {m.group(0).strip()!r}"
        for n, line in enumerate(value.strip().splitlines()[1:], start=2):
            if m := opens_task.match(line):
                return f"the {name} holds the label {m.group(0).strip()!r} at line {n}: a next task written into this one"
    return None


# An echo: the output says again what the instruction said. Measured over character 3-grams
# (jamo for Hangul); an answer that restates the question and then answers has many more
# shingles than the question, so its similarity stays low.
_ECHO_SIMILARITY = 0.75
_ECHO_CONTAINED = 0.9
_FIRST_ITEM = re.compile(r"^\s*1[.)]\s+")


def echo(instruction: str, input: str, output: str) -> str | None:
    q, a = normalize(instruction), normalize(output)
    if not a or not q:
        return None
    if a == q:
        return "the output is the instruction, word for word"
    sq, sa = shingle_sets([instruction, output], 3)
    if len(sa) == 0 or len(sq) == 0:
        return None
    similarity = jaccard(sq, sa)
    if similarity >= _ECHO_SIMILARITY:
        return f"the output repeats the instruction (similarity {similarity:.2f} of their 3-grams)"
    if len(a) >= 25 and q.startswith(a):
        return "the output is the opening of the instruction, word for word"
    # "1. <the question>\n2. ...": the model numbered the question as the first item of its answer
    first, _, rest = output.strip().partition("\n")
    if rest.strip() and normalize(first) == q and not instruction.rstrip().endswith(("?", "？")):
        # a task said again as the first line ("비에 대한 짧은 시를 써주세요." then something else); a
        # question may stand as a heading over its answer, so only a task that is not a question
        return "the output opens by saying the task again, word for word"
    if _FIRST_ITEM.match(first):
        head = _FIRST_ITEM.sub("", first)
        sh = shingle_sets([head], 3)[0]
        if normalize(head) == q or (len(sh) and jaccard(sq, sh) >= _ECHO_SIMILARITY):
            return "the output's first item is the instruction again (the model numbered the question as item 1)"
    inside = len(set(sa.tolist()) & set(sq.tolist())) / len(sa)
    if inside >= _ECHO_CONTAINED and len(a) >= 0.6 * len(q) and not input.strip():
        return f"the output is {inside:.0%} made of the instruction's own words (of {len(q)} characters, it keeps {len(a)})"
    return None


# A loop: a unit of at least 4 characters said three times or more back to back, covering at
# least 60 characters ("A gentle rain, a gentle rain, a gentle rain, ..."); or one line (list
# markers aside) that makes up half of 4 or more lines; or a long text that compresses like a
# loop does.
_RUN = re.compile(r"(.{4,80}?)(?:\s*\1){2,}", re.DOTALL)
_MIN_RUN_CHARS = 60
_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+|\n+")
_MIN_COMPRESSED_LEN = 600
_MAX_COMPRESSION = 0.12


def repetition(fields: Mapping[str, str]) -> str | None:
    for name, value in fields.items():
        text = re.sub(r"\s+", " ", value.lower()).strip()
        for m in _RUN.finditer(text):
            if len(m.group(0)) >= _MIN_RUN_CHARS and normalize(m.group(1)):
                n = len(m.group(0)) // max(len(m.group(1)), 1)
                return f"the {name} repeats {m.group(1).strip()[:40]!r} about {n} times in a row"
        lines = [normalize(_LIST_MARK.sub("", s)) for s in value.splitlines()]
        lines = [s for s in lines if len(s) >= 12]  # "positive" thrice is a classification list
        if len(lines) >= 4:
            _, count = Counter(lines).most_common(1)[0]
            if (count >= 3 and count * 2 >= len(lines)) or (count >= 5 and count * 4 >= len(lines)):
                return f"the {name} has the same line {count} times of {len(lines)}"
            # the same long line with only its numbers changed, five times or more
            shapes = [re.sub(r"\d+", "", x) for x in lines]
            long_shapes = [x for x in shapes if len(x) >= 20]
            count = Counter(long_shapes).most_common(1)[0][1] if long_shapes else 0
            if count >= 5 and count * 2 >= len(lines):
                return f"the {name} has the same line, numbers aside, {count} times of {len(lines)}"
        # A loop of whole sentences: "The hotel is very good. ... The hotel is very good. ..."
        sentences = [normalize(x) for x in _SENTENCE_END.split(value)]
        sentences = [x for x in sentences if len(x) >= 15]
        again = len(sentences) - len(set(sentences))
        if again >= 3 and again * 10 >= 3 * len(sentences):
            return f"the {name} says {again} of its {len(sentences)} sentences again"
        raw = text.encode("utf-8")
        if len(raw) >= _MIN_COMPRESSED_LEN and (ratio := len(zlib.compress(raw, 9)) / len(raw)) <= _MAX_COMPRESSION:
            return f"the {name} compresses to {ratio:.0%} of its size: it says the same thing over and over"
    return None
