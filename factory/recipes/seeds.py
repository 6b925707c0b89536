"""Loading what a generation run starts from: seed tasks, keywords, and evaluation questions.

Seed tasks come in the self-instruct / Alpaca `seed_tasks.jsonl` format

    {"id": "seed_task_0", "name": "breakfast_suggestion", "instruction": "...",
     "instances": [{"input": "", "output": "..."}], "is_classification": false}

or in our simpler one, `{"instruction": "...", "input": "...", "output": "...", "id": "..."}` with
everything but the instruction optional. Keywords (the topics recipe) are a text file, one per
line, `#` starting a comment line, or JSONL `{"keyword": "..."}`. Evaluation questions (for
decontamination) are MT-Bench question files (`question_id`, `turns`) or JSONL with an
instruction/question/prompt; `load_eval_files` reads several, naming each question by its file.
`detect_lang` tells a run's language from its seeds when none is given.

Every mistake in a file raises `SeedFileError` naming the file and the line, which the command
line prints as one line (exit status 2).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from factory.errors import SeedFileError
from schemas import Instance, Question, SeedTask


def _lines(path: str | Path, what: str) -> Iterator[tuple[int, str]]:
    """(line number, stripped text) of the non-blank lines; errors for a missing or empty file."""
    path = Path(path)
    if not path.is_file():
        raise SeedFileError(f"{path}: no such {what} file")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a BOM from a Windows editor is fine
    except UnicodeDecodeError as e:
        raise SeedFileError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    found = False
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            found = True
            yield lineno, line.strip()
    if not found:
        raise SeedFileError(f"{path}: the {what} file is empty")


def _json_object(path: str | Path, lineno: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as e:
        raise SeedFileError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(value, dict):
        raise SeedFileError(f"{path}:{lineno}: expected a JSON object {{...}}, got {type(value).__name__}")
    return value


def _text_field(path: str | Path, lineno: int, record: dict[str, Any], name: str, required: bool) -> str:
    value = record.get(name)
    if value is None:
        if required:
            keys = ", ".join(sorted(record)) or "none"
            raise SeedFileError(f"{path}:{lineno}: missing field {name!r} (fields present: {keys})")
        return ""
    if not isinstance(value, str):
        raise SeedFileError(f"{path}:{lineno}: field {name!r} must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise SeedFileError(f"{path}:{lineno}: field {name!r} is empty")
    return value


# ------------------------------------------------------------------------------------------------
# Seed tasks


def _seed_task(path: str | Path, lineno: int, record: dict[str, Any], ordinal: int) -> SeedTask:
    instruction = _text_field(path, lineno, record, "instruction", required=True)
    raw_id = record.get("id", f"seed-{ordinal}")
    if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
        raise SeedFileError(f"{path}:{lineno}: field 'id' must be a string or a number")
    instances: list[Instance] = []
    if "instances" in record:
        raw = record["instances"]
        if not isinstance(raw, list):
            raise SeedFileError(f"{path}:{lineno}: field 'instances' must be a list of {{input, output}}")
        for k, inst in enumerate(raw, start=1):
            if not isinstance(inst, dict):
                raise SeedFileError(f"{path}:{lineno}: instance {k} must be an object {{input, output}}")
            try:
                instances.append(Instance.model_validate(inst))
            except ValidationError as e:
                err = e.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                raise SeedFileError(f"{path}:{lineno}: instance {k}: {where}: {err['msg']}") from None
    elif "input" in record or "output" in record:
        instances.append(Instance(
            input=_text_field(path, lineno, record, "input", required=False),
            output=_text_field(path, lineno, record, "output", required=False),
        ))
    is_classification = record.get("is_classification", False)
    if not isinstance(is_classification, bool):
        raise SeedFileError(f"{path}:{lineno}: field 'is_classification' must be true or false")
    extra = {k: v for k, v in record.items()
             if k not in {"id", "name", "instruction", "instances", "input", "output", "is_classification"}}
    return SeedTask(
        id=str(raw_id), name=_text_field(path, lineno, record, "name", required=False),
        instruction=instruction, instances=instances, is_classification=is_classification, **extra,
    )


def load_seed_tasks(path: str | Path) -> list[SeedTask]:
    """The seed tasks of a JSONL file, in either format (they may be mixed)."""
    tasks: list[SeedTask] = []
    first_line: dict[str, int] = {}
    for lineno, line in _lines(path, "seed task"):
        task = _seed_task(path, lineno, _json_object(path, lineno, line), len(tasks) + 1)
        if task.id in first_line:
            raise SeedFileError(f"{path}:{lineno}: seed id {task.id!r} already used on line {first_line[task.id]}")
        first_line[task.id] = lineno
        tasks.append(task)
    return tasks


def seed_dedup_items(tasks: list[SeedTask], text: Literal["instruction", "prompt"] = "instruction") -> list[tuple[str, str]]:
    """(id, text) of the seeds for the deduplicator: generated examples must not repeat a seed.
    With "prompt", each instance is an entry of its own: instruction + its input."""
    if text == "instruction":
        return [(t.id, t.instruction) for t in tasks]
    items = []
    for t in tasks:
        inputs = [i.input for i in t.instances if i.input] or [""]
        for k, inp in enumerate(inputs, start=1):
            items.append((t.id if k == 1 else f"{t.id}#{k}", f"{t.instruction}\n\n{inp}" if inp else t.instruction))
    return items


# ------------------------------------------------------------------------------------------------
# Keywords


def load_keywords(path: str | Path) -> list[str]:
    """Keywords of a text file (one a line, `#` comment lines) or of JSONL `{"keyword": ...}`.
    A keyword listed twice is kept once (the first)."""
    keywords: list[str] = []
    seen: set[str] = set()
    for lineno, line in _lines(path, "keyword"):
        if line.startswith("#"):
            continue
        if line.startswith("{"):
            record = _json_object(path, lineno, line)
            keyword = _text_field(path, lineno, record, "keyword", required=True).strip()
        else:
            keyword = line
        if keyword not in seen:
            seen.add(keyword)
            keywords.append(keyword)
    if not keywords:
        raise SeedFileError(f"{path}: no keywords (only comments)")
    return keywords


# ------------------------------------------------------------------------------------------------
# Evaluation questions, for decontamination

_QUESTION_FIELDS = ("instruction", "question", "prompt", "query")


def load_eval_items(path: str | Path) -> list[tuple[str, str]]:
    """(id, text) of every evaluation question: MT-Bench files give one entry per turn
    ("<question_id>", "<question_id>#2", ...); other JSONL its instruction/question/prompt."""
    items: list[tuple[str, str]] = []
    for lineno, line in _lines(path, "evaluation"):
        record = _json_object(path, lineno, line)
        if "turns" in record:
            try:
                q = Question.model_validate(record)
            except ValidationError as e:
                err = e.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                raise SeedFileError(f"{path}:{lineno}: not a valid question: {where}: {err['msg']}") from None
            items.extend((q.question_id if k == 1 else f"{q.question_id}#{k}", turn)
                         for k, turn in enumerate(q.turns, start=1))
            continue
        name = next((f for f in _QUESTION_FIELDS if f in record), None)
        if name is None:
            raise SeedFileError(
                f"{path}:{lineno}: no question: expected 'turns' or one of {list(_QUESTION_FIELDS)}")
        text = _text_field(path, lineno, record, name, required=True)
        extra = record.get("input")
        if isinstance(extra, str) and extra:
            text = f"{text}\n\n{extra}"
        items.append((str(record.get("id", record.get("question_id", f"eval-{lineno}"))), text))
    return items


def detect_lang(texts: list[str]) -> str:
    """"ko" when Hangul is a real part of the letters (Korean text carries English terms), else "en"."""
    joined = "".join(texts)
    hangul = sum(1 for c in joined if "\uac00" <= c <= "\ud7a3")
    latin = sum(1 for c in joined if c.isascii() and c.isalpha())
    return "ko" if hangul and hangul / (hangul + latin) >= 0.3 else "en"


def load_eval_files(paths: list[Path]) -> list[tuple[str, str]]:
    """(id, text) of every evaluation question (each turn), ids prefixed with the file's name:
    a rejection then says which file it came from, and two files may share question ids."""
    return [(f"{Path(path).name}:{item_id}", text) for path in paths for item_id, text in load_eval_items(path)]
