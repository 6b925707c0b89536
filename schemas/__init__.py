"""Records exchanged between stages, and crash-safe JSONL I/O. Imports nothing of ours."""

from schemas.jsonl import (
    JsonlError,
    JsonlWriter,
    ReadReport,
    iter_jsonl,
    read_jsonl,
    write_jsonl,
)
from schemas.frames import frame, read_records
from schemas.records import (
    Answer,
    Example,
    Instance,
    Judgment,
    LLMCall,
    Provenance,
    Question,
    Rejected,
    SeedTask,
    Usage,
)
from schemas.run import CompareFolder, RunFolder, RunFolderError

__all__ = [
    "Answer", "CompareFolder", "Example", "Instance", "Judgment", "JsonlError", "JsonlWriter", "LLMCall", "Provenance",
    "Question", "ReadReport", "Rejected", "RunFolder", "RunFolderError", "SeedTask", "Usage", "frame", "iter_jsonl",
    "read_jsonl", "read_records", "write_jsonl",
]
