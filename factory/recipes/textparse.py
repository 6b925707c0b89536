"""Reading what a model wrote: JSON (structured output, or JSON in text) and the plain-text
formats the prompts ask for where an endpoint has no structured output.

The text parsers are lenient about what models actually do with a requested format: markdown
bold around labels, Korean or English labels, numbering or none, `###` separators or blank
lines, code fences, a chatty sentence before the list. What they cannot read becomes a
`ParseError` whose message says what was wrong; a recipe turns it into a `parse` rejection.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


class ParseError(ValueError):
    """A model output that could not be read; the message says why (it becomes a rejection)."""


# --------------------------------------------------------------------------------------------
# JSON

_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n(.*?)\n?```\s*$", re.DOTALL)


def extract_json(text: str) -> Any:
    """The JSON value in `text`: the whole text, a fenced block, or the first object in prose.
    Control characters inside strings are let through (strict=False): llama.cpp's JSON grammar
    allows a raw newline in a string, and the reply is still the schema's structure."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    try:
        return json.loads(stripped, strict=False)
    except json.JSONDecodeError as e:
        first_error = e
    start = stripped.find("{")
    if start >= 0:
        try:
            value, _ = json.JSONDecoder(strict=False).raw_decode(stripped, start)
            return value
        except json.JSONDecodeError:
            pass
    raise ParseError(f"not JSON ({first_error.msg} at line {first_error.lineno} column {first_error.colno})")


def salvage_array_items(text: str, key: str) -> list[Any]:
    """The complete elements of the array under `key` in a JSON text that was cut short
    (finish_reason "length"): `{"tasks": [{...}, {...}, {"instr` gives the first two."""
    m = re.search(r'"' + re.escape(key) + r'"\s*:\s*\[', text)
    if not m:
        return []
    decoder = json.JSONDecoder(strict=False)
    pos, items = m.end(), []
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return items
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return items
        items.append(value)


# --------------------------------------------------------------------------------------------
# Tasks: "1. Instruction: ... 1. Input: ... 1. Output: ..." (Alpaca's format) and its variants


@dataclass(frozen=True)
class TaskDraft:
    instruction: str
    input: str
    output: str


_FIELD_NAMES = {
    "instruction": "instruction", "task": "instruction", "지시문": "instruction", "지시": "instruction",
    "명령": "instruction", "명령문": "instruction",
    "input": "input", "입력": "input",
    "output": "output", "response": "output", "answer": "output", "출력": "output", "답변": "output",
    "응답": "output",
}
_LABEL = re.compile(
    r"^[ \t]*(?:#+[ \t]*)?(\d+[ \t]*[.)][ \t]*)?[*_]{0,2}[ \t]*"
    r"(instructions?|tasks?|inputs?|outputs?|responses?|answers?|지시문|지시|명령문|명령|입력|출력|답변|응답)"
    r"[ \t]*[*_]{0,2}[ \t]*[:：][ \t]*[*_]{0,2}",
    re.IGNORECASE | re.MULTILINE,
)
# Leftovers between tasks: separators and headers such as "Task 3", "과제 3", "3.", "###".
_TRAILER = re.compile(r"(?:\n[ \t]*(?:#{2,}|-{3,}|\*{3,}|(?:task|과제)[ \t]*\d*[.:]?|\d+[.)]?)[ \t]*)+\s*$", re.IGNORECASE)
_NO_INPUT = re.compile(
    r"^[<(\[]?\s*(?:no[ _-]?input|none|n/?a|empty|입력\s*없음|없음|해당\s*없음|비어\s*있음)\s*[>)\]]?\.?$", re.IGNORECASE
)


def _clean(value: str) -> str:
    value = _TRAILER.sub("", "\n" + value.strip()).strip()
    return value.strip("*_ \t\n")


def no_input(value: str) -> bool:
    return not value.strip() or bool(_NO_INPUT.match(value.strip()))


def parse_task_list(text: str) -> list[TaskDraft | ParseError]:
    """Every task in `text`, in order; a task that lacks its instruction or output is a ParseError
    in its place. No task at all raises ParseError."""
    labels = list(_LABEL.finditer(text))
    if not labels:
        raise ParseError("no 'Instruction:' / 'Output:' labels found (not the requested task-list format)")
    if any(m.group(1) for m in labels):
        # Numbered labels ("3. Output:"): an unnumbered "Input:" line is then part of a text
        # (a coding task's example, say), not a label.
        labels = [m for m in labels if m.group(1)]
    tasks: list[dict[str, str]] = []
    for i, m in enumerate(labels):
        name = m.group(2).lower()
        field = _FIELD_NAMES.get(name) or _FIELD_NAMES[name.removesuffix("s")]  # "Instructions:" too
        end = labels[i + 1].start() if i + 1 < len(labels) else len(text)
        value = _clean(text[m.end():end])
        if field == "instruction" or not tasks or field in tasks[-1]:
            tasks.append({})
        tasks[-1][field] = value
    out: list[TaskDraft | ParseError] = []
    for n, t in enumerate(tasks, start=1):
        instruction, output = t.get("instruction", ""), t.get("output", "")
        raw_input = t.get("input", "")
        # A label without text ("Output:" and nothing) is a task with an empty field: the gate
        # rejects it as `empty`. A task without the label at all did not come in this format.
        if "instruction" not in t:
            out.append(ParseError(f"task {n} has no instruction"))
        elif "output" not in t:
            out.append(ParseError(f"task {n} has no output"))
        else:
            out.append(TaskDraft(instruction, "" if no_input(raw_input) else raw_input, output))
    return out


# --------------------------------------------------------------------------------------------
# Questions: "[keyword]" headings with numbered questions under each

_ITEM = re.compile(r"^[ \t]*(?:\d+[ \t]*[.)]|[-*•·]|Q\d*[.:)]?)[ \t]+(.+?)[ \t]*$", re.IGNORECASE)
_QUESTION_PREFIX = re.compile(r"^(?:질문|question|q)\s*\d*\s*[:：.]\s*", re.IGNORECASE)
_HEADING = re.compile(r"^[ \t]*#*[ \t]*[\[【]?[ \t]*(?:키워드|keyword)?[ \t]*[:：]?[ \t]*(.+?)[ \t]*[\]】]?[ \t]*:?[ \t]*$",
                      re.IGNORECASE)


def _norm(s: str) -> str:
    return re.sub(r"\s+", "", s).lower()


def parse_question_list(text: str, keywords: list[str]) -> list[tuple[str, str]]:
    """(keyword, question) pairs. A question under no recognisable heading gets the request's only
    keyword, or "" when the request had several. No question at all raises ParseError."""
    by_norm = {_norm(k): k for k in keywords}
    current = keywords[0] if len(keywords) == 1 else ""
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip() or line.strip().startswith("```"):
            continue
        item = _ITEM.match(line)
        if item:
            question = _QUESTION_PREFIX.sub("", item.group(1)).strip().strip("*_").strip()
            if question:
                out.append((current, question))
            continue
        heading = _HEADING.match(line)
        if heading:
            name = _norm(heading.group(1).strip("*_"))
            if name in by_norm:
                current = by_norm[name]
            elif line.strip().startswith(("[", "【", "#")):
                current = ""  # a heading, but not one of our keywords
    if not out:
        raise ParseError("no numbered questions found (not the requested '[keyword]' + '1. question' format)")
    return out


# --------------------------------------------------------------------------------------------
# Answers: "[Answer N]" / "[답변 N]" markers

_ANSWER_MARK = re.compile(
    r"^[ \t]*(?:#+[ \t]*)?[*_]{0,2}[\[【(]?[ \t]*(?:답변|답|answer)[ \t]*(\d+)[ \t]*[\]】)]?[*_]{0,2}[ \t]*[:：]?[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)


def parse_numbered_answers(text: str, count: int) -> dict[int, str]:
    """{question number: answer}. Without any marker, a request for one answer takes the whole text."""
    marks = list(_ANSWER_MARK.finditer(text))
    if not marks:
        if count == 1 and text.strip():
            return {1: text.strip()}
        if numbered := _numbered_answers(text, count):
            return numbered
        raise ParseError("no '[Answer N]' markers found (not the requested format)")
    out: dict[int, str] = {}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        number, body = int(m.group(1)), text[m.end():end].strip()
        if number not in out or (body and not out[number]):
            out[number] = body  # "" for a marker with nothing under it: the gate rejects it as `empty`
    return out


_NUMBERED = re.compile(r"^[ \t]*(\d+)[ \t]*[.)][ \t]+", re.MULTILINE)


def _numbered_answers(text: str, count: int) -> dict[int, str]:
    """"1. ...\n2. ..." in place of the markers, as small models write it: taken only when the
    numbers at line starts are exactly 1 .. count in order (an answer with a list of its own
    has more, and is not guessed at)."""
    marks = list(_NUMBERED.finditer(text))
    if [int(m.group(1)) for m in marks] != list(range(1, count + 1)):
        return {}
    ends = [m.start() for m in marks[1:]] + [len(text)]
    return {i: text[m.end():end].strip() for i, (m, end) in enumerate(zip(marks, ends), start=1)}


_STRING_FIELD = re.compile(r'"(answer_\d+)"\s*:\s*(?=")')


def json_or_salvage(text: str, truncated: bool) -> Any:
    """The reply's JSON value; for a reply cut at max_tokens, the complete string fields it holds."""
    try:
        return extract_json(text)
    except ParseError:
        if not truncated:
            raise
        return salvage_string_fields(text)


def salvage_string_fields(text: str) -> dict[str, str]:
    """The complete `"answer_N": "..."` values of a JSON object that was cut short."""
    decoder = json.JSONDecoder(strict=False)
    out: dict[str, str] = {}
    for m in _STRING_FIELD.finditer(text):
        try:
            value, _ = decoder.raw_decode(text, m.end())
        except json.JSONDecodeError:
            break  # the value being written when the answer was cut
        if isinstance(value, str):
            out[m.group(1)] = value
    return out
