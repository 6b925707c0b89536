"""The Batch API's settings (the `[batch]` section of a settings file) and the flags a command
that can use the Batch API adds (`generate`, `judge`, `batch`)."""

from __future__ import annotations

import tomllib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from factory.batch.files import MAX_FILE_BYTES, MAX_REQUESTS_PER_FILE
from factory.engine.settings import load_settings


class BatchSettings(BaseModel):
    """How requests go through the Batch API (the `[batch]` section of a settings file)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    max_requests_per_file: int = Field(default=MAX_REQUESTS_PER_FILE, ge=1, le=MAX_REQUESTS_PER_FILE,
                                       description="requests per input file (the API allows 50,000)")
    max_file_bytes: int = Field(default=MAX_FILE_BYTES, ge=1024, le=MAX_FILE_BYTES,
                                description="bytes per input file (the API allows 200 MB)")
    wait: bool = Field(default=True, description="wait for the batches; False: submit, collect on a rerun")
    poll_initial_s: float = Field(default=5.0, gt=0, description="first wait between status checks")
    poll_max_s: float = Field(default=60.0, gt=0, description="longest wait between status checks")
    retry_failed: bool = Field(default=False, description="send again the requests whose line failed for good "
                                                          "(a 400-class refusal) in an earlier run")

    @model_validator(mode="after")
    def _poll_order(self) -> BatchSettings:
        if self.poll_max_s < self.poll_initial_s:
            raise ValueError(f"poll_max_s ({self.poll_max_s}) must be at least poll_initial_s ({self.poll_initial_s})")
        return self


def add_batch_arguments(parser: Any, *, switch: bool = True) -> None:
    """`--batch` (when `switch`: the command can go either way) and the --batch-* settings."""
    g = parser.add_argument_group("Batch API (half price, results within 24 h)")
    if switch:
        g.add_argument("--batch", action="store_true", help="send the requests through the Batch API")
    g.add_argument("--batch-wait", choices=("yes", "no"), default=None,
                   help="yes: wait for the batches (default); no: submit and exit, a rerun collects")
    g.add_argument("--batch-max-requests", type=int, default=None, help="requests per input file (at most 50000)")
    g.add_argument("--batch-max-bytes", type=int, default=None, help="bytes per input file (at most 200 MB)")
    g.add_argument("--batch-poll", type=float, default=None, help="first wait between status checks, seconds (default 5)")
    g.add_argument("--batch-poll-max", type=float, default=None, help="longest wait between status checks (default 60)")
    g.add_argument("--retry-failed", action="store_true", default=None,
                   help="send again the requests an earlier run recorded as final failures (400-class refusals; "
                        "by default a rerun gives back their recorded error and does not pay for them again)")


def batch_settings_from_args(args: Any) -> BatchSettings:
    """BatchSettings from the [batch] section of `--config` (if it has one), then the --batch-* flags."""
    wait = getattr(args, "batch_wait", None)
    overrides = {
        "wait": None if wait is None else wait == "yes",
        "max_requests_per_file": getattr(args, "batch_max_requests", None),
        "max_file_bytes": getattr(args, "batch_max_bytes", None),
        "poll_initial_s": getattr(args, "batch_poll", None),
        "poll_max_s": getattr(args, "batch_poll_max", None),
        "retry_failed": getattr(args, "retry_failed", None),
    }
    config = getattr(args, "config", None)
    if config is not None and not _has_section(config, "batch"):
        config = None  # a file without [batch]: its top-level keys are the engine's, not ours
    return load_settings(config, overrides, model=BatchSettings, section="batch")


def _has_section(path: Any, section: str) -> bool:
    try:
        with open(path, "rb") as f:
            return isinstance(tomllib.load(f).get(section), dict)
    except (OSError, tomllib.TOMLDecodeError):
        return True  # let load_settings report the problem with its own message
