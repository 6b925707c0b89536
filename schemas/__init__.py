"""Records exchanged between stages, and crash-safe JSONL I/O. Imports nothing of ours."""

from schemas.jsonl import (
    JsonlError,
    JsonlWriter,
    ReadReport,
    iter_jsonl,
    read_jsonl,
    write_jsonl,
)
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

__all__ = [
    "Answer", "Example", "Instance", "Judgment", "JsonlError", "JsonlWriter", "LLMCall", "Provenance",
    "Question", "ReadReport", "Rejected", "SeedTask", "Usage", "iter_jsonl", "read_jsonl", "write_jsonl",
]
