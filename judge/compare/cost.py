"""The money behind each model: its run's ledger, its judging, and optionally its training compute.

From `RUN/ledger.sqlite`: data (every stage but judging and answering), answers (answers from an
endpoint, stage "eval-answers") and the run's own judging (stage "judge"); to that the comparison
adds what grading this model cost (its judgments' `cost_usd`). A stage with a request of unknown
price makes its figure unknown (None), never 0. A run holding several labels (say a fine-tune and
an endpoint's answers) charges each of them the run's whole ledger: the ledger does not say which
label a request served.

Training compute, with `--gpu-hour-usd`: GPU-seconds times the price. `RUN/train/metrics.jsonl`
holds one record per logged step with that step's tokens and tokens/s (all ranks); a step between
two logged ones is taken to be like the next logged one, so with `log_every` > 1 both figures are
estimates (marked so). The records do not say how many GPUs ran; `gpus` (default 1) does.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from factory.engine import Ledger
from schemas import RunFolder

JUDGE_STAGE = "judge"
ANSWER_STAGE = "eval-answers"


@dataclass(frozen=True)
class TrainingCompute:
    tokens: int
    seconds: float  # wall-clock seconds of the training steps
    steps: int
    estimated: bool  # some steps were not logged: scaled from the logged ones


@dataclass(frozen=True)
class RunCost:
    data_usd: float | None
    answers_usd: float | None
    judging_usd: float | None
    unpriced_requests: int
    training: TrainingCompute | None


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def ledger_costs(run: Path) -> RunCost:
    """The run's spend by kind; a run without a ledger spent nothing through the API."""
    data: float | None = 0.0
    answers: float | None = 0.0
    judging: float | None = 0.0
    unpriced = 0
    ledger_path = RunFolder(run).ledger
    if ledger_path.exists():
        try:
            with Ledger(ledger_path) as ledger:
                totals = ledger.totals_by_stage_model()
        except sqlite3.DatabaseError as e:
            raise ValueError(f"{ledger_path} cannot be read ({e}); move it away to compare without its costs") from None
        for t in totals:
            unpriced += t.unpriced
            if t.stage == JUDGE_STAGE:
                judging = _add(judging, t.cost_usd)
            elif t.stage == ANSWER_STAGE:
                answers = _add(answers, t.cost_usd)
            else:
                data = _add(data, t.cost_usd)
    return RunCost(data, answers, judging, unpriced, training_compute(run))


def training_compute(run: Path) -> TrainingCompute | None:
    """Tokens and seconds of training from the metrics file; None without one."""
    path = RunFolder(run).metrics
    if not path.exists():
        return None
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if lineno == len(lines):
                break  # the torn last line of a killed run
            raise ValueError(f"{path}:{lineno} is not JSON; remove that line and rerun") from None
        if isinstance(rec, dict) and isinstance(rec.get("step"), int) and rec.get("tokens") and rec.get("tokens_per_s"):
            records.append(rec)
    if not records:
        return None
    tokens, seconds, previous, estimated = 0.0, 0.0, 0, False
    for rec in sorted(records, key=lambda r: r["step"]):
        covered = rec["step"] - previous  # steps since the last logged one, this one included
        estimated |= covered > 1
        tokens += covered * rec["tokens"]
        seconds += covered * rec["tokens"] / rec["tokens_per_s"]
        previous = rec["step"]
    return TrainingCompute(int(round(tokens)), seconds, previous, estimated)


@dataclass(frozen=True)
class ModelCost:
    data_usd: float | None
    answers_usd: float | None
    judging_usd: float | None  # the run's judging plus this comparison's grading of the model
    training_usd: float | None  # None: no --gpu-hour-usd or no metrics
    total_usd: float | None  # None when a part with a price is unknown
    gpu_seconds: float | None
    tokens_trained: int | None
    training_estimated: bool


def model_cost(run_cost: RunCost, compare_judging_usd: float | None, *, gpu_hour_usd: float | None,
               gpus: int = 1) -> ModelCost:
    t = run_cost.training
    gpu_seconds = t.seconds * gpus if t else None
    training = gpu_seconds / 3600 * gpu_hour_usd if gpu_seconds is not None and gpu_hour_usd is not None else None
    judging = _add(run_cost.judging_usd, compare_judging_usd)
    total = _add(_add(run_cost.data_usd, run_cost.answers_usd), judging)
    if training is not None:
        total = _add(total, training)
    return ModelCost(run_cost.data_usd, run_cost.answers_usd, judging, training, total, gpu_seconds,
                     t.tokens if t else None, bool(t and t.estimated))
