"""The trainer: a hand-written PyTorch LoRA loop with packing. Imports `schemas` only.

The Python API (trainer/api.py): `trainer.train(run, config=... or settings=...)`, `trainer.answer`,
`trainer.merge`, and `trainer.train_metrics(run)` / `trainer.answers(run)` (polars DataFrames). They load
on first use, so that `import trainer.settings` does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainer.answering import AnswerOutcome, AnswerSettings
    from trainer.api import TrainOutcome, answer, answers, merge, train, train_metrics
    from trainer.settings import TrainSettings

__all__ = ["AnswerOutcome", "AnswerSettings", "TrainOutcome", "TrainSettings", "answer", "answers", "merge", "train",
           "train_metrics"]


def __getattr__(name: str) -> Any:
    if name == "TrainSettings":
        from trainer.settings import TrainSettings

        return TrainSettings
    if name == "AnswerSettings":
        from trainer.answering import AnswerSettings

        return AnswerSettings
    if name in __all__:
        from trainer import api

        return getattr(api, name)
    raise AttributeError(f"module 'trainer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})  # the API's names for tab completion, before their first use
