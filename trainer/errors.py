"""The trainer's error for what the user can fix."""

from __future__ import annotations


class TrainError(RuntimeError):
    """A problem the user can fix (missing data, a checkpoint from other settings...): the message says how."""
