"""Existing instruction data as a run's examples (`python -m factory import`; provenance recipe "import").

Reads Alpaca JSON (a list of {instruction, input, output}) or JSONL with one example a line under
any of the usual names: {instruction, input, output}, {question, answer}, {prompt, response},
{query, response}, {instruction, completion}, or a single-turn chat {messages: [system?, user,
assistant]}. Each becomes a `schemas.Example`, after the same filters and near-duplicate check a
generation run applies (each can be switched off); what is dropped goes to rejected.jsonl with
the reason. Records already in examples.jsonl or rejected.jsonl (by id) are skipped.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from factory.errors import ImportFormatError
from factory.quality import DedupSettings, example_text, load_run_deduper, rejection
from factory.quality.filters import REASON_LENGTH, FilterSettings, check, encoding_rejection
from factory.recipes.seeds import load_eval_items
from schemas import Example, JsonlWriter, Provenance, Rejected, RunFolder, iter_jsonl

RECIPE = "import"

_INSTRUCTION_KEYS = ("instruction", "question", "prompt", "query")
_OUTPUT_KEYS = ("output", "answer", "response", "completion")


class ImportSettings(BaseModel):
    """What `import` does; saved as [import] in the run's config.toml."""

    model_config = ConfigDict(extra="forbid")

    source: Path = Field(description="the file to import")
    format: Literal["auto", "alpaca", "jsonl"] = Field(
        default="auto", description="alpaca: one JSON list; jsonl: one object a line; auto: by the first character",
    )
    lang: Literal["ko", "en"] | None = Field(default=None, description="language of the data (Example.lang, filters)")
    source_model: str = Field(default="unknown", description="the model that wrote the data, for provenance")
    filter: bool = Field(default=True, description="apply the quality filters")
    dedup: bool = Field(default=True, description="drop near-duplicates (and eval near-duplicates)")
    eval_file: Path | None = Field(default=None, description="evaluation questions no example may be near")
    filters: FilterSettings = Field(default_factory=FilterSettings)
    dedup_settings: DedupSettings = Field(default_factory=DedupSettings)

    @field_validator("source", "eval_file")
    @classmethod
    def _file_exists(cls, v: Path | None) -> Path | None:
        if v is not None and not Path(v).is_file():
            raise ValueError(f"no such file: {v}")
        return v


# ------------------------------------------------------------------------------------------------
# Reading


def _records(path: Path, fmt: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) for each record: `where` names the file and line (or record) for errors."""
    if not path.is_file():
        raise ImportFormatError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ImportFormatError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    if not text.strip():
        raise ImportFormatError(f"{path}: the file is empty")
    if fmt == "auto":
        fmt = "alpaca" if text.lstrip().startswith("[") else "jsonl"
    if fmt == "alpaca":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ImportFormatError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(data, list):
            raise ImportFormatError(f"{path}: Alpaca format is a JSON list of objects, got {type(data).__name__}")
        for k, record in enumerate(data, start=1):
            if not isinstance(record, dict):
                raise ImportFormatError(f"{path}: record {k}: expected an object, got {type(record).__name__}")
            yield f"{path}: record {k}", record
        return
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ImportFormatError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(record, dict):
            raise ImportFormatError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
        yield f"{path}:{lineno}", record


def _text(where: str, record: dict[str, Any], key: str) -> str:
    value = record.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ImportFormatError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    return value


def _from_messages(where: str, messages: Any) -> dict[str, str]:
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise ImportFormatError(f"{where}: 'messages' must be a list of {{role, content}} objects")
    roles = [m.get("role") for m in messages]
    system = [m for m in messages if m.get("role") == "system"]
    turns = [m for m in messages if m.get("role") != "system"]
    if [m.get("role") for m in turns] != ["user", "assistant"] or len(system) > 1:
        raise ImportFormatError(
            f"{where}: only single-turn chats import (optional system, then user, then assistant); got roles {roles}")
    return {
        "system": _text(where, system[0], "content") if system else "",
        "instruction": _text(where, turns[0], "content"),
        "output": _text(where, turns[1], "content"),
    }


def parse_record(where: str, record: dict[str, Any]) -> dict[str, str]:
    """{instruction, input, output, system} of one record, whichever names it uses."""
    if "messages" in record:
        fields = _from_messages(where, record["messages"])
        fields["input"] = ""
        return fields
    ikey = next((k for k in _INSTRUCTION_KEYS if k in record), None)
    okey = next((k for k in _OUTPUT_KEYS if k in record), None)
    if ikey is None or okey is None:
        missing = f"instruction field ({'/'.join(_INSTRUCTION_KEYS)})" if ikey is None else \
            f"answer field ({'/'.join(_OUTPUT_KEYS)})"
        raise ImportFormatError(f"{where}: no {missing}; fields present: {', '.join(sorted(record)) or 'none'}")
    return {
        "instruction": _text(where, record, ikey),
        "input": _text(where, record, "input") or _text(where, record, "context"),
        "output": _text(where, record, okey),
        "system": _text(where, record, "system"),
    }


def _record_id(where: str, record: dict[str, Any], stem: str, ordinal: int) -> str:
    raw = record.get("id", record.get("question_id"))
    if raw is None:
        return f"{stem}-{ordinal}"
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise ImportFormatError(f"{where}: field 'id' must be a string or a number")
    return str(raw)


def run_import(run_dir: Path, s: ImportSettings) -> Counter:
    """Import `s.source` into `run_dir`; returns counts: read, kept, skipped, and one per reason."""
    run_dir.mkdir(parents=True, exist_ok=True)
    folder = RunFolder(run_dir)
    examples_path, rejected_path = folder.examples, folder.rejected
    done = {ex.id for ex in iter_jsonl(examples_path, Example)} | {r.id for r in iter_jsonl(rejected_path, Rejected)}
    # Read everything first: a malformed record fails the import before anything is written.
    stem = s.source.stem
    parsed: list[tuple[str, str, dict[str, str]]] = []
    first_seen: dict[str, str] = {}
    for ordinal, (where, record) in enumerate(_records(s.source, s.format), start=1):
        item_id = _record_id(where, record, stem, ordinal)
        if item_id in first_seen:
            raise ImportFormatError(f"{where}: id {item_id!r} already used at {first_seen[item_id]}")
        first_seen[item_id] = where
        parsed.append((item_id, where, parse_record(where, record)))
    eval_items = load_eval_items(s.eval_file) if s.eval_file and s.dedup else []
    deduper = load_run_deduper(run_dir, s.dedup_settings, eval_items=eval_items) if s.dedup else None
    filters = s.filters if s.filters.lang is not None or s.lang is None else s.filters.model_copy(update={"lang": s.lang})
    counts: Counter = Counter(read=len(parsed))
    provenance = Provenance(recipe=RECIPE, model=s.source_model)
    with JsonlWriter(examples_path) as kept_out, JsonlWriter(rejected_path) as rejected_out:
        passed: list[Example] = []
        for item_id, where, f in parsed:
            if item_id in done:
                counts["skipped"] += 1
                continue
            empty = [name for name in ("instruction", "output") if not f[name].strip()]
            if empty:
                rejected_out.append(Rejected(
                    id=item_id, reason=REASON_LENGTH, detail=f"{empty[0]} is empty ({where})",
                    text=f"{f['instruction']}\n\n{f['output']}"))
                counts[REASON_LENGTH] += 1
                continue
            if bad := encoding_rejection(item_id, {k: f[k] for k in ("system", "instruction", "input", "output")}):
                rejected_out.append(bad.model_copy(update={"detail": f"{bad.detail} ({where})"}))
                counts[bad.reason] += 1
                continue
            ex = Example(id=item_id, instruction=f["instruction"], input=f["input"], output=f["output"],
                         system=f["system"], lang=s.lang or "", provenance=provenance)
            if s.filter and (r := check(ex, None, filters)):
                rejected_out.append(r.record(ex))
                counts[r.reason] += 1
                continue
            passed.append(ex)
        if deduper is None:
            verdicts = [None] * len(passed)
        else:  # in file order, each against everything kept before it (batched hashing)
            field = deduper.settings.text
            verdicts = deduper.check_and_add_many([(ex.id, example_text(ex, field)) for ex in passed])
        for ex, verdict in zip(passed, verdicts):
            if verdict is not None and verdict.is_dup:
                rec = rejection(ex.id, verdict, text=ex.prompt())
                rejected_out.append(rec)
                counts[rec.reason] += 1
            else:
                kept_out.append(ex)
                counts["kept"] += 1
    return counts
