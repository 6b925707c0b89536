"""Statistics of a judge run: bootstrap intervals, win/tie/loss, position consistency, unscored rate,
verbosity.

The bootstrap resamples questions, not items: both turns of a question (and, for a pairwise
comparison, its verdict) come along as often as the question is drawn, since a question that is easy
in one turn tends to be easy in the other. A mean over the drawn questions is their items' sum over
their items' count (`n_resamples` rounds at once, drawn with `numpy.random.default_rng(seed)`), and
the interval is judge.reports.intervals' (by default BCa with the small-sample expansion, its
jackknife leaving out one question at a time). With one item per question this is draw for draw
`scipy.stats.bootstrap(..., rng=default_rng(seed))`, and the tests hold it to scipy's percentile and
BCa intervals; bench/compare_stats.py measures its coverage on scores with planted question effects.

Unscored items never enter a mean or a rate: they are counted apart, per model and mode.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from judge.grading.verdicts import judgment_key
from judge.reports.intervals import DEFAULT_METHOD, Method, endpoints, resample_counts
from schemas import Answer, Judgment

DEFAULT_RESAMPLES = 5000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_SEED = 0
PAIR_OUTCOMES = ("win", "tie", "loss")  # from the model's side: model won, tie, baseline won
_OUTCOME_OF_WINNER = {"model": "win", "tie": "tie", "baseline": "loss"}


@dataclass(frozen=True)
class Estimate:
    """A point estimate on the data and its bootstrap interval."""

    value: float
    low: float
    high: float
    n: int  # items
    questions: int = 0  # the resampling units

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _check(n: int, n_resamples: int, confidence: float) -> None:
    if n == 0:
        raise ValueError("no values to estimate from")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")


def _by_question(columns: np.ndarray, groups: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """(questions, k) sums of the item columns and (questions,) item counts; without `groups`,
    each item is its own question (in order)."""
    if groups is None:
        return columns, np.ones(len(columns))
    if len(groups) != len(columns):
        raise ValueError(f"one question per value: {len(groups)} questions for {len(columns)} values")
    _, index = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    sums = np.zeros((int(index.max()) + 1, columns.shape[1]))
    np.add.at(sums, index, columns)
    return sums, np.bincount(index).astype(float)


@dataclass(frozen=True)
class MeanReplicates:
    """Means of item columns over questions: on the data, per bootstrap round, per left-out question."""

    point: np.ndarray  # (k,)
    rounds: np.ndarray  # (n_resamples, k); empty with fewer than two questions
    jackknife: np.ndarray  # (questions, k)
    questions: int


def mean_replicates(columns: np.ndarray, groups: Sequence[str] | None, *, n_resamples: int, seed: int) -> MeanReplicates:
    """A drawn question brings all its items: a round's mean is their sum over their count."""
    sums, sizes = _by_question(columns, groups)
    total, n = sums.sum(axis=0), sizes.sum()
    q = len(sizes)
    if q < 2:  # one question: nothing to resample between
        return MeanReplicates(total / n, np.empty((0, sums.shape[1])), np.empty((0, sums.shape[1])), q)
    counts = resample_counts(q, n_resamples, seed)
    rounds = (counts @ sums) / (counts @ sizes)[:, None]
    jackknife = (total - sums) / (n - sizes)[:, None]
    return MeanReplicates(total / n, rounds, jackknife, q)


def _mean_intervals(columns: np.ndarray, groups: Sequence[str] | None, *, n_resamples: int, confidence: float,
                    seed: int, method: Method) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The means of the item columns (items, k), their interval ends, and the number of questions."""
    r = mean_replicates(columns, groups, n_resamples=n_resamples, seed=seed)
    if r.questions < 2:
        return r.point, r.point.copy(), r.point.copy(), r.questions
    low, high = endpoints(r.point, r.rounds, r.jackknife, confidence=confidence, n_groups=r.questions, method=method)
    return r.point, low, high, r.questions


def bootstrap_mean(values: Sequence[float], groups: Sequence[str] | None = None, *,
                   n_resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE,
                   seed: int = DEFAULT_SEED, method: Method = DEFAULT_METHOD) -> Estimate:
    """The mean of `values` with its bootstrap interval over the questions `groups` (one per value;
    None: every value its own question)."""
    x = np.asarray(values, dtype=float)
    _check(len(x), n_resamples, confidence)
    point, low, high, q = _mean_intervals(x[:, None], groups, n_resamples=n_resamples, confidence=confidence,
                                          seed=seed, method=method)
    return Estimate(float(point[0]), float(low[0]), float(high[0]), len(x), q)


def bootstrap_rates(outcomes: Sequence[str], labels: Sequence[str] = PAIR_OUTCOMES,
                    groups: Sequence[str] | None = None, *, n_resamples: int = DEFAULT_RESAMPLES,
                    confidence: float = DEFAULT_CONFIDENCE, seed: int = DEFAULT_SEED,
                    method: Method = DEFAULT_METHOD) -> dict[str, Estimate]:
    """The share of each label among `outcomes`, with intervals from the same resamples of questions."""
    unknown = set(outcomes) - set(labels)
    if unknown:
        raise ValueError(f"outcomes {sorted(unknown)} are not among {list(labels)}")
    codes = np.array([labels.index(o) for o in outcomes])
    _check(len(codes), n_resamples, confidence)
    indicators = (codes[:, None] == np.arange(len(labels))[None, :]).astype(float)
    point, low, high, q = _mean_intervals(indicators, groups, n_resamples=n_resamples, confidence=confidence,
                                          seed=seed, method=method)
    return {label: Estimate(float(point[k]), float(low[k]), float(high[k]), len(codes), q)
            for k, label in enumerate(labels)}


# --- judgments as a table ---------------------------------------------------------------------

def latest_judgments(judgments: Iterable[Judgment]) -> list[Judgment]:
    """One judgment per item: the last one written wins (a rerun that re-grades an unscored item
    appends the new outcome after the old one)."""
    latest: dict[tuple[Any, ...], Judgment] = {}
    for j in judgments:
        key = judgment_key(j)
        latest.pop(key, None)  # a replaced record moves to the position of its replacement
        latest[key] = j
    return list(latest.values())


def latest_answers(answers: Iterable[Answer]) -> list[Answer]:
    latest: dict[tuple[str, str], Answer] = {}
    for a in answers:
        latest.pop((a.question_id, a.model), None)
        latest[(a.question_id, a.model)] = a
    return list(latest.values())


_FRAME_SCHEMA = {
    "question_id": pl.String, "category": pl.String, "lang": pl.String, "mode": pl.String,
    "reference_guided": pl.Boolean, "turn": pl.Int64, "model": pl.String, "baseline": pl.String,
    "judge_model": pl.String, "status": pl.String, "score": pl.Float64, "winner": pl.String,
    "consistent": pl.Boolean, "error": pl.String,
}


def judgments_frame(judgments: Iterable[Judgment], categories: Mapping[str, str] | None = None) -> pl.DataFrame:
    """One row per judgment. The category comes from the judgment (written at grading time), else
    from `categories` (question id -> category), else "unknown"."""
    categories = categories or {}
    rows = []
    for j in judgments:
        extra = j.model_extra or {}
        rows.append({
            "question_id": j.question_id,
            "category": extra.get("category") or categories.get(j.question_id) or "unknown",
            "lang": extra.get("lang") or "",
            "mode": j.mode,
            "reference_guided": bool(extra.get("reference_guided")),
            "turn": j.turn,
            "model": j.model,
            "baseline": j.baseline or "",
            "judge_model": j.judge_model,
            "status": j.status,
            "score": j.score,
            "winner": j.winner,
            "consistent": extra.get("consistent"),
            "error": j.error,
        })
    return pl.DataFrame(rows, schema=_FRAME_SCHEMA)


def _groups(frame: pl.DataFrame, keys: list[str]) -> list[tuple[dict[str, Any], pl.DataFrame]]:
    """(key values, rows) per group, sorted by key so that reports are stable."""
    if frame.is_empty():
        return []
    out = []
    for values, group in frame.group_by(keys, maintain_order=True):
        out.append((dict(zip(keys, values, strict=True)), group))
    return sorted(out, key=lambda kv: tuple(str(kv[0][k]) for k in keys))


# --- the tables of a report ---------------------------------------------------------------------

def score_rows(frame: pl.DataFrame, mode: str, *, n_resamples: int = DEFAULT_RESAMPLES,
               confidence: float = DEFAULT_CONFIDENCE, seed: int = DEFAULT_SEED,
               method: Method = DEFAULT_METHOD) -> list[dict[str, Any]]:
    """Mean score per judge, model and category (plus "all"; and "all" per turn), with intervals.

    `turn` is None for all turns together. A group whose items are all unscored has no estimate.
    """
    rows_of_mode = frame.filter(pl.col("mode") == mode)
    out: list[dict[str, Any]] = []
    for keys, turn_col in ((["judge_model", "model", "category"], False), (["judge_model", "model"], False),
                           (["judge_model", "model", "turn"], True)):
        for values, group in _groups(rows_of_mode, keys):
            rows = group.filter(pl.col("status") == "scored")
            scored = rows["score"].to_list()
            est = bootstrap_mean(scored, rows["question_id"].to_list(), n_resamples=n_resamples,
                                 confidence=confidence, seed=seed, method=method) if scored else None
            out.append({
                "judge_model": values["judge_model"], "model": values["model"],
                "category": values.get("category", "all"),
                "turn": values["turn"] if turn_col else None,
                "total": group.height, "unscored": group.height - len(scored),
                "score": est.as_dict() if est else None,
            })
    return out


def pair_rows(frame: pl.DataFrame, *, n_resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE,
              seed: int = DEFAULT_SEED, method: Method = DEFAULT_METHOD) -> list[dict[str, Any]]:
    """Win/tie/loss of each model against its baseline (per judge; overall and per category), with
    intervals, and the position consistency rate: the share of scored comparisons whose two orders
    agreed. Inconsistent comparisons are already ties; `inconsistent` counts them."""
    pairs = frame.filter(pl.col("mode") == "pair")
    out: list[dict[str, Any]] = []
    for keys in (["judge_model", "model", "baseline"], ["judge_model", "model", "baseline", "category"]):
        for values, group in _groups(pairs, keys):
            scored = group.filter(pl.col("status") == "scored")
            outcomes = [_OUTCOME_OF_WINNER[w] for w in scored["winner"].to_list()]
            rates = (bootstrap_rates(outcomes, groups=scored["question_id"].to_list(), n_resamples=n_resamples,
                                     confidence=confidence, seed=seed, method=method) if outcomes else {})
            flags = [c for c in scored["consistent"].to_list() if c is not None]
            out.append({
                "judge_model": values["judge_model"], "model": values["model"], "baseline": values["baseline"],
                "category": values.get("category", "all"),
                "total": group.height, "scored": scored.height, "unscored": group.height - scored.height,
                **{label: (rates[label].as_dict() if rates else None) for label in PAIR_OUTCOMES},
                "consistency": (sum(flags) / len(flags)) if flags else None,
                "consistency_n": len(flags),
                "inconsistent": len(flags) - sum(flags),
            })
    return out


def unscored_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Per judge, mode, model (and baseline): how many items stayed unscored, and why (top reasons)."""
    out = []
    for values, group in _groups(frame, ["judge_model", "mode", "model", "baseline"]):
        unscored = group.filter(pl.col("status") == "unscored")
        reasons = Counter(e or "no reason recorded" for e in unscored["error"].to_list())
        out.append({
            **values,
            "total": group.height, "unscored": unscored.height,
            "rate": unscored.height / group.height,
            "top_reasons": [{"reason": r, "count": c} for r, c in reasons.most_common(3)],
        })
    return out


def verbosity_rows(answers: Iterable[Answer]) -> list[dict[str, Any]]:
    """Mean answer length per model, per turn answered: characters always; tokens where recorded
    (token counts of different tokenizers are not comparable, characters are)."""
    per_model: dict[str, dict[str, list[int]]] = {}
    for a in answers:
        d = per_model.setdefault(a.model, {"chars": [], "tokens": [], "questions": []})
        d["questions"].append(1)
        d["chars"].extend(len(t) for t in a.turns)
        if len(a.tokens) == len(a.turns):
            d["tokens"].extend(a.tokens)
    return [
        {
            "model": model, "answers": len(d["questions"]), "turns": len(d["chars"]),
            "mean_chars": float(np.mean(d["chars"])) if d["chars"] else None,
            "mean_tokens": float(np.mean(d["tokens"])) if d["tokens"] else None,
        }
        for model, d in sorted(per_model.items())
    ]
