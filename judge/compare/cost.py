"""The money behind each model (RUN/LABEL): its share of its run's ledger, its judging, and optionally
its training compute, split per label where the run's files can tell, and "shared" where they cannot.

A run's ledger (`RUN/ledger.sqlite`) records every request's stage, model and key, not the label it
served. What says which label a request served:

- **answers** (stage "eval-answers", `judge answer`): the request keys the answers record (newer
  runs), else the endpoint's model named in `[answer.LABEL]` of config.toml. A label answered by the
  trainer on this machine (`[answer.LABEL]` without an endpoint) made no API request: not used.
- **judging** in the run (stage "judge", `just judge`): the request keys of the run's judgments of
  that model (`RUN/eval/judgments.jsonl`). To that the comparison adds its own grading of the model.
- **data** (every other stage: generation) and **training** compute: used by the labels that
  answered with this run's adapter. A label answered by the base model alone (the trainer without
  `--adapter`) did not use them: not used. A label served by an endpoint may serve this run's
  adapter or not; the files cannot say, so it counts as a user.

Where a part of the spend cannot be tied to one label (data and training used by several labels of
the run, answers of two endpoint labels of the same served model recorded without keys, run
judging no judgment claims), each label that may have used it is charged the whole of it, marked
"shared" with the others named: that is what the label cost to make, and adding the rows of one run
counts the shared part more than once. A part with a request of unknown price is unknown (None),
never 0.

Training compute, with `--gpu-hour-usd`: GPU-seconds times the price. `RUN/train/metrics.jsonl`
holds one record per logged step with that step's tokens and tokens/s (all ranks); a step between
two logged ones is taken to be like the next logged one, so with `log_every` > 1 both figures are
estimates (marked so). The records do not say how many GPUs ran; `gpus` (default 1) does.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from factory.engine import Ledger
from schemas import Answer, JsonlError, Judgment, LLMCall, RunFolder, read_jsonl

JUDGE_STAGE = "judge"
ANSWER_STAGE = "eval-answers"
PARTS = ("data", "answers", "judging", "training")

Basis = Literal["own", "shared", "not used"]
Origin = Literal["adapter", "base", "endpoint", "unknown"]


@dataclass(frozen=True)
class TrainingCompute:
    tokens: int
    seconds: float  # wall-clock seconds of the training steps
    steps: int
    estimated: bool  # some steps were not logged: scaled from the logged ones


@dataclass(frozen=True)
class Part:
    """One part of a label's cost: its dollars (None: unknown) and whether the label alone used them."""

    usd: float | None
    basis: Basis
    shared_with: tuple[str, ...] = ()  # the run's other labels charged the same dollars


@dataclass(frozen=True)
class RunCost:
    """A run's spend split per label; `training` is the run's compute, `training_parts` who used it."""

    labels: dict[str, dict[str, Part]]  # label -> data / answers / judging -> Part
    training_parts: dict[str, Part]  # label -> who used the training compute (usd filled in later)
    training: TrainingCompute | None
    unpriced_requests: int
    origins: dict[str, Origin] = field(default_factory=dict)
    unclaimed_answers_usd: float | None = 0.0  # endpoint answers no label of the run can have made


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def _cost(calls: Iterable[LLMCall]) -> float | None:
    """The calls' dollars; None if one with tokens has no price."""
    total: float | None = 0.0
    for c in calls:
        if c.cost_usd is None and (c.usage.input_tokens or c.usage.output_tokens):
            return None
        total = _add(total, c.cost_usd or 0.0)
    return total


def keyed_cost(ledger: Ledger, keys: Iterable[str]) -> float | None:
    """What the requests `keys` cost, each once; a key the ledger lacks cost nothing here."""
    return _cost(c for c in (ledger.get(k) for k in set(keys)) if c is not None)


def _is_own_adapter(run: Path, adapter: Path) -> bool:
    """Whether a label's adapter is this run's (written relative to wherever the command ran)."""
    own = RunFolder(run).adapter
    return ((adapter if adapter.is_absolute() else Path.cwd() / adapter).resolve() == own.resolve()
            or adapter.parts[-3:] == (run.resolve().name, *own.parts[-2:]))


def _origins(run: Path, labels: Iterable[str]) -> tuple[dict[str, Origin], dict[str, str]]:
    """Where each label's answers came from (config.toml's [answer.LABEL]) and an endpoint's model."""
    tables = RunFolder(run).config_section("answer")
    origins: dict[str, Origin] = {}
    served: dict[str, str] = {}
    for label in labels:
        table = tables.get(label)
        if not isinstance(table, dict):
            origins[label] = "unknown"
        elif table.get("endpoint"):
            origins[label] = "endpoint"
            if isinstance(table.get("model"), str):
                served[label] = table["model"]
        elif table.get("adapter"):
            # an adapter of another run used that run's data, not this one's
            origins[label] = "adapter" if _is_own_adapter(run, Path(str(table["adapter"]))) else "base"
        else:
            origins[label] = "base"
    return origins, served


def _read(path: Path, record: type[Answer] | type[Judgment]) -> list:
    if not path.exists():
        return []
    try:
        return read_jsonl(path, record)
    except JsonlError as e:
        raise ValueError(f"{e}; fix or move the file to compare with its costs") from None


def _split(amount: float | None, users: list[str], label: str) -> Part:
    if label not in users:
        return Part(0.0, "not used")
    others = tuple(u for u in users if u != label)
    return Part(amount, "shared" if others else "own", others)


def run_costs(run: Path, baseline: str | None = None) -> RunCost:
    """The run's spend per label; a run without a ledger spent nothing through the API. The
    comparison's `baseline` is no user of the data or the training (it is what the others are
    measured against, and has no cost row)."""
    folder = RunFolder(run)
    answers: list[Answer] = _read(folder.answers, Answer)
    judgments: list[Judgment] = _read(folder.judgments, Judgment)
    labels = sorted({a.model for a in answers} | set(folder.config_section("answer")))
    origins, served = _origins(run, labels)
    users = [lb for lb in labels if origins[lb] != "base" and lb != baseline]  # of the data and the training
    data: float | None = 0.0
    unpriced = 0
    answer_part: dict[str, Part] = {lb: Part(0.0, "not used") for lb in labels}
    orphans: float | None = 0.0
    judging_part: dict[str, Part] = {lb: Part(0.0, "not used") for lb in labels}
    ledger_path = folder.ledger
    if ledger_path.exists():
        try:
            with Ledger(ledger_path) as ledger:
                for t in ledger.totals_by_stage_model():
                    unpriced += t.unpriced
                    if t.stage not in (JUDGE_STAGE, ANSWER_STAGE):
                        data = _add(data, t.cost_usd)
                answer_part, orphans = _answer_parts(ledger, labels, origins, served, answers)
                judging_part = _judging_parts(ledger, labels, judgments)
        except sqlite3.DatabaseError as e:
            raise ValueError(f"{ledger_path} cannot be read ({e}); move it away to compare without its costs") from None
    parts = {lb: {"data": _split(data, users, lb), "answers": answer_part[lb], "judging": judging_part[lb]}
             for lb in labels}
    training = {lb: _split(None, users, lb) for lb in labels}
    return RunCost(parts, training, training_compute(run), unpriced, origins, orphans)


def _answer_parts(ledger: Ledger, labels: list[str], origins: Mapping[str, Origin], served: Mapping[str, str],
                  answers: list[Answer]) -> tuple[dict[str, Part], float | None]:
    """Each label's answers part, and what no label can have asked for (charged to none)."""
    calls = list(ledger.calls(stage=ANSWER_STAGE))
    keys: dict[str, set[str]] = defaultdict(set)
    for a in answers:
        keys[a.model].update((a.model_extra or {}).get("request_keys") or [])
    out = {lb: Part(0.0, "not used") for lb in labels}
    claimed: set[str] = set()
    for lb in labels:
        if keys[lb]:
            out[lb] = Part(keyed_cost(ledger, keys[lb]), "own")
            claimed |= keys[lb]
    # the rest, by the endpoint's model name; failing that, by every label of unknown origin
    unclaimed: dict[str, list[LLMCall]] = defaultdict(list)
    for c in calls:
        if c.key not in claimed:
            unclaimed[c.model].append(c)
    candidates = [lb for lb in labels if not keys[lb] and origins[lb] in ("endpoint", "unknown")]
    charged: dict[str, float | None] = {}
    sharing: dict[str, set[str]] = defaultdict(set)
    orphans: float | None = 0.0
    for model, group in unclaimed.items():
        by_name = [lb for lb in candidates if served.get(lb) == model]
        takers = by_name or [lb for lb in candidates if lb not in served]
        if not takers:
            orphans = _add(orphans, _cost(group))
        for lb in takers:
            charged[lb] = _add(charged.get(lb, 0.0), _cost(group))
            sharing[lb] |= set(takers) - {lb}
    for lb, usd in charged.items():
        out[lb] = Part(usd, "shared" if sharing[lb] else "own", tuple(sorted(sharing[lb])))
    return out, orphans


def _judging_parts(ledger: Ledger, labels: list[str], judgments: list[Judgment]) -> dict[str, Part]:
    keys: dict[str, set[str]] = defaultdict(set)
    for j in judgments:
        keys[j.model].update(j.request_keys)
    claimed = set().union(*keys.values()) if keys else set()
    rest = _cost(c for c in ledger.calls(stage=JUDGE_STAGE) if c.key not in claimed)
    out: dict[str, Part] = {}
    for lb in labels:
        own = keyed_cost(ledger, keys[lb]) if keys[lb] else 0.0
        if rest is None or rest > 0:  # judging no judgment claims: any label of the run may have been graded
            out[lb] = Part(_add(own, rest), "shared", tuple(x for x in labels if x != lb))
        else:
            out[lb] = Part(own, "own" if keys[lb] else "not used")
    return out


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
    judging_usd: float | None  # the run's judging of the label plus this comparison's grading of it
    training_usd: float | None  # None: no --gpu-hour-usd or no metrics; 0 where not used
    total_usd: float | None  # None when a part with a price is unknown
    gpu_seconds: float | None
    tokens_trained: int | None
    training_estimated: bool
    basis: dict[str, Basis]  # part -> own / shared / not used
    shared_with: dict[str, list[str]]  # part -> the run's other labels charged the same (shared parts only)


def model_cost(run_cost: RunCost, label: str, compare_judging_usd: float | None, *, gpu_hour_usd: float | None,
               gpus: int = 1) -> ModelCost:
    parts = run_cost.labels.get(label) or {"data": Part(0.0, "not used"), "answers": Part(0.0, "not used"),
                                           "judging": Part(0.0, "not used")}
    used = run_cost.training_parts.get(label, Part(0.0, "not used"))
    t = run_cost.training if used.basis != "not used" else None
    gpu_seconds = t.seconds * gpus if t else None
    training = gpu_seconds / 3600 * gpu_hour_usd if gpu_seconds is not None and gpu_hour_usd is not None else None
    if used.basis == "not used" and run_cost.training is not None and gpu_hour_usd is not None:
        training = 0.0
    judging = _add(parts["judging"].usd, compare_judging_usd)
    total = _add(_add(parts["data"].usd, parts["answers"].usd), judging)
    if training is not None:
        total = _add(total, training)
    # the comparison's grading is the label's own, whatever the run's judging was
    judged = parts["judging"] if parts["judging"].basis == "shared" else Part(judging, "own")
    all_parts = {**parts, "judging": judged, "training": used}
    return ModelCost(parts["data"].usd, parts["answers"].usd, judging, training, total, gpu_seconds,
                     t.tokens if t else None, bool(t and t.estimated),
                     basis={k: all_parts[k].basis for k in PARTS},
                     shared_with={k: list(p.shared_with) for k, p in all_parts.items() if p.basis == "shared"})
