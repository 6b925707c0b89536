"""The trainer's Python API: one call each for training, answering an evaluation set and merging,
and the run's training metrics (`train_metrics`) and answers as polars DataFrames.

    import trainer
    out = trainer.train("runs/ko", config="configs/gemma-2b-it-lora.toml")   # or settings=TrainSettings(...)
    out.finished, out.adapter_dir, out.metrics()                             # metrics: a DataFrame
    trainer.answer("runs/ko", questions="evalsets/ko.jsonl", label="base")
    trainer.answer("runs/ko", questions="evalsets/ko.jsonl", adapter="runs/ko/train/adapter")
    trainer.merge("runs/ko")

Each call takes the settings its command takes (`python -m trainer train|answer|merge`): the same
settings objects (`TrainSettings`, `AnswerSettings`), a TOML file (`config`), and keyword
arguments named like the settings' fields (a table as a dict: `lora={"r": 8}`); it raises the
errors the command prints (`SettingsError`, `TrainError`, `AnswerError`, `MergeError`, ...), before
any model loads when a setting is wrong. In a notebook training shows a progress bar.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from schemas import RunFolder, frame, read_records
from trainer.answering import (
    ANSWER_FIELDS,
    AnswerError,
    AnswerOutcome,
    AnswerSettings,
    answer_run,
    answer_values,
    resolve_settings,
)
from trainer.errors import TrainError
from trainer.settings import SettingsError, TrainSettings, load_settings

if TYPE_CHECKING:
    import polars as pl

GIVEN_AS = "the call"  # where keyword arguments come from, in a settings error


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and (type(shell).__name__ == "ZMQInteractiveShell" or "google.colab" in sys.modules)


@dataclass(frozen=True)
class TrainOutcome:
    """Where a training call left the run."""

    run: Path
    step: int  # optimizer steps done, this call's and earlier ones
    total_steps: int
    adapter_dir: Path | None  # the trained adapter, once the run is finished
    losses: dict[int, float]  # step -> training loss, for this call's steps

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps

    @property
    def metrics_path(self) -> Path:
        return RunFolder(self.run).metrics

    def metrics(self) -> pl.DataFrame:
        """The logged steps of the run (train/metrics.jsonl) as a polars DataFrame."""
        return train_metrics(self.run)


def _wants_bar(progress: str) -> bool:
    """Whether the progress is a tqdm bar: asked for, or "auto" in a notebook where tqdm is installed."""
    if progress not in ("auto", "bar", "line"):
        raise SettingsError(f"progress={progress!r}: use 'auto', 'bar' or 'line'")
    if progress == "bar" and find_spec("tqdm") is None:
        raise SettingsError("progress='bar' needs tqdm: pip install 'instruct-factory[notebook]' (or progress='line')")
    return progress == "bar" or (progress == "auto" and _in_notebook() and find_spec("tqdm") is not None)


def train(run: str | Path, *, config: str | Path | None = None, settings: TrainSettings | None = None,
          max_steps_this_run: int | None = None, progress: Literal["auto", "bar", "line"] = "auto",
          **overrides: Any) -> TrainOutcome:
    """Train (or resume) a LoRA adapter on RUN/examples.jsonl (or `data=`) with the hand-written loop.

    Settings: `settings` (TrainSettings; it stands for the `[train]` table of `config`) or that table,
    with keyword arguments named like TrainSettings' fields on top (`model=`, `max_steps=`, `lr=`, `lora={"r": 8}`, ...).
    `max_steps_this_run` stops with a checkpoint after that many steps; a call again continues.
    `progress`: "auto" (a bar in a notebook, the line on stderr elsewhere), "bar" or "line".
    Raises SettingsError, TrainError, ModelLoadError, ... before any model loads when a setting is wrong.
    """
    from trainer.training import train_run

    bar = _wants_bar(progress)
    # As in factory.generate and judge.grade: a settings object stands for the config's table.
    table = Path(config) if config is not None and settings is None else None
    resolved = load_settings(table, overrides, base=settings, given_as=GIVEN_AS)
    result = train_run(Path(run), resolved, max_steps_this_run=max_steps_this_run, progress_bar=bar)
    return TrainOutcome(run=Path(run), step=result.step, total_steps=result.total_steps,
                        adapter_dir=result.adapter_dir, losses=dict(result.losses))


def answer(run: str | Path, *, questions: str | Path | None = None, adapter: str | Path | None = None,
           model: str | None = None, label: str | None = None, config: str | Path | None = None,
           settings: AnswerSettings | None = None, progress: Literal["auto", "bar", "line"] = "auto",
           **options: Any) -> AnswerOutcome:
    """Answer an evaluation set with the base model (`model`, default: the adapter's base or the run's
    [train].model), plus `adapter` when given, batched; append to RUN/eval/answers.jsonl under
    `label` (default "lora" with an adapter, "base" without). A call again answers only what is left.

    Other keyword arguments: the fields of AnswerSettings (`max_new_tokens`, `batch_size`,
    `sampling`, `seed`, `device`, `dtype`). `progress`: "auto" (a bar in a notebook, the line on stderr
    elsewhere), "bar" or "line", as for `train`. Raises AnswerError (a setting or an input to change).
    """
    bar = _wants_bar(progress)
    given = {"questions": questions, "adapter": adapter, "model": model, "label": label, **options}
    unknown = sorted(set(given) - set(ANSWER_FIELDS))
    if unknown:
        raise AnswerError(f"unknown setting {unknown[0]!r}: answer() takes {', '.join(ANSWER_FIELDS)}")
    base = settings.model_dump(exclude_none=True) if settings is not None else {}
    table = Path(config) if config is not None and settings is None else None  # the object stands for it
    values = answer_values(table, {**base, **{k: v for k, v in given.items() if v is not None}})
    return answer_run(Path(run), resolve_settings(Path(run), values), progress_bar=bar)


def merge(run: str | Path, *, model: str | None = None, out: str | Path | None = None,
          dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto") -> Path:
    """Merge the run's adapter into its base model (default: the run's [train].model) and write a
    plain transformers folder to `out` (default RUN/merged); return it. Raises MergeError."""
    from trainer.merging import DTYPES, MergeError, merge_run

    if dtype != "auto" and dtype not in DTYPES:
        raise MergeError(f"dtype={dtype!r}: use auto, {', '.join(DTYPES)}")
    return merge_run(Path(run), model=model, out=Path(out) if out is not None else None,
                     dtype=None if dtype == "auto" else DTYPES[dtype])


# --------------------------------------------------------------------------------------------
# The run's files as DataFrames


def train_metrics(run: str | Path) -> pl.DataFrame:
    """RUN/train/metrics.jsonl (one row per logged step: step, loss, eval_loss, lr, tokens_per_s, ...)."""
    from trainer.metrics import read_metrics

    path = RunFolder(run).metrics
    if not path.is_file():
        raise TrainError(f"no training metrics at {path}: train the run first (trainer.train({str(run)!r}, ...))")
    rows = read_metrics(path)  # a torn last line (a run killed mid-write) is skipped
    names = {"step": "Int64", "epoch": "Int64", "loss": "Float64", "eval_loss": "Float64", "lr": "Float64",
             "grad_norm": "Float64", "tokens": "Int64", "tokens_per_s": "Float64", "peak_gib": "Float64"}
    return frame([{k: r.get(k) for k in names} for r in rows], names, TrainError)


def answers(run: str | Path) -> pl.DataFrame:
    """RUN/eval/answers.jsonl, one row per turn: question_id, model (the label), turn, text, tokens."""
    from schemas import Answer

    path = RunFolder(run).answers
    items = read_records(path, Answer, AnswerError,
                         f"no answers at {path}: answer first (trainer.answer({str(run)!r}, questions=...))")
    rows = [{"question_id": a.question_id, "model": a.model, "turn": i + 1, "text": text,
             "tokens": a.tokens[i] if i < len(a.tokens) else None}
            for a in items for i, text in enumerate(a.turns)]
    return frame(rows, {"question_id": "String", "model": "String", "turn": "Int64", "text": "String",
                        "tokens": "Int64"}, AnswerError)


__all__ = ["AnswerOutcome", "TrainOutcome", "answer", "answers", "merge", "train", "train_metrics"]
