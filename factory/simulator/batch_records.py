"""The simulated Batch API's records: stored files, answered lines, and batches with their clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Shares of `seconds` spent validating and finalizing (in_progress takes the rest); cancelling
# takes as long as finalizing.
VALIDATING_SHARE = 0.1
FINALIZING_SHARE = 0.1


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def obj(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": len(self.content), "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed",
                "expires_at": None, "status_details": None}


@dataclass
class Line:
    """One request line, answered at creation. outcome: "ok", "error" (an error-file line) or
    "unfinished" (left over when the batch expires)."""

    custom_id: str
    outcome: str
    record: dict[str, Any]  # the output- or error-file line
    usage: tuple[int, int, int, int] = (0, 0, 0, 0)  # prompt, cached, completion, reasoning


@dataclass
class SimBatch:
    id: str
    input_file_id: str
    endpoint: str
    created_at: int  # wall clock, for the API's timestamps
    started: float  # monotonic, for the lifecycle
    seconds: float
    lines: list[Line]
    model: str | None
    metadata: dict[str, Any] | None
    validation_errors: list[dict[str, Any]] = field(default_factory=list)
    expires: bool = False
    input_tokens: int = 0  # prompt tokens of its answered lines (what the enqueued limit counts)
    cancel_elapsed: float | None = None  # seconds after creation when cancel was asked
    final_status: str | None = None  # set once the files exist
    output_file_id: str | None = None
    error_file_id: str | None = None
    stamps: dict[str, int] = field(default_factory=dict)

    def elapsed(self, now: float) -> float:
        return now - self.started

    @property
    def validating_s(self) -> float:
        return self.seconds * VALIDATING_SHARE

    @property
    def finalizing_s(self) -> float:
        return self.seconds * FINALIZING_SHARE

    @property
    def in_progress_s(self) -> float:
        return self.seconds - self.validating_s - self.finalizing_s

    def lines_done(self, elapsed: float) -> int:
        """How many lines (in file order) have an answer after `elapsed` seconds."""
        if self.validation_errors or elapsed < self.validating_s:
            return 0
        if self.in_progress_s <= 0:
            return len(self.lines)
        share = min(1.0, (elapsed - self.validating_s) / self.in_progress_s)
        return int(len(self.lines) * share)
