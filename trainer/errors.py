"""The trainer's exception tree. `python -m trainer` prints any of these as one line and exits 2.

    schemas.UserError
      SettingsError         a [train] setting or flag missing or invalid (schemas'; the factory raises it too)
      AnswerError           an answering run that cannot go on as asked (schemas'; judge's `answer` raises it too)
      TrainerError
        TrainError          missing data, a checkpoint from other settings, a runtime that cannot train
        ModelLoadError      a model or tokenizer that cannot be loaded
        GgufError           a GGUF file that cannot be used
        MergeError          an adapter that cannot be merged
        PackedAttentionError  packed attention cannot run as asked

Importing this module needs nothing beyond the standard library (bench/train_gpu.py runs the
trainer's parts where only torch, transformers, peft and accelerate are installed).
"""

from __future__ import annotations

from schemas import AnswerError, SettingsError, UserError


class TrainerError(UserError):
    """A problem the user can fix; the message says what to change."""


class TrainError(TrainerError):
    """Missing data, a checkpoint from other settings, a runtime that cannot train: the message says how."""


class ModelLoadError(TrainerError):
    """A model or tokenizer could not be loaded; the message is one line that says how to fix it."""


class GgufError(TrainerError):
    """A GGUF file that cannot be used; the message says what to do."""


class MergeError(TrainerError):
    """An adapter that cannot be merged into its base model; the message says how."""


class PackedAttentionError(TrainerError):
    """Packed attention cannot run as asked; the message says what to change."""


__all__ = ["AnswerError", "GgufError", "MergeError", "ModelLoadError", "PackedAttentionError", "SettingsError",
           "TrainError", "TrainerError", "UserError"]
