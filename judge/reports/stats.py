"""Statistics of a judge run: bootstrap intervals, win/tie/loss, position consistency, unscored rate,
verbosity.

The bootstrap is the percentile bootstrap over graded items (each question-turn is one item): draw
`n_resamples` resamples of the item indices at once with `numpy.random.default_rng(seed)`, take the
statistic of each, and report the `(1-confidence)/2` and `(1+confidence)/2` quantiles (numpy's
linear interpolation). That is draw for draw what `scipy.stats.bootstrap(..., method="percentile",
rng=default_rng(seed))` computes, and a test holds it to an independent computation. Turns of one
question are resampled as separate items, so intervals of multi-turn sets are slightly narrow.

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
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _check(n: int, n_resamples: int, confidence: float) -> None:
    if n == 0:
        raise ValueError("no values to estimate from")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")


def _resample_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    # One (n_resamples, n) draw, the same as scipy.stats.bootstrap draws with one batch.
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def _interval(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(low), float(high)


def bootstrap_mean(values: Sequence[float], *, n_resamples: int = DEFAULT_RESAMPLES,
                   confidence: float = DEFAULT_CONFIDENCE, seed: int = DEFAULT_SEED) -> Estimate:
    """The mean of `values` with its percentile-bootstrap interval."""
    x = np.asarray(values, dtype=float)
    _check(len(x), n_resamples, confidence)
    means = x[_resample_indices(len(x), n_resamples, seed)].mean(axis=1)
    low, high = _interval(means, confidence)
    return Estimate(float(x.mean()), low, high, len(x))


def bootstrap_rates(outcomes: Sequence[str], labels: Sequence[str] = PAIR_OUTCOMES, *,
                    n_resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE,
                    seed: int = DEFAULT_SEED) -> dict[str, Estimate]:
    """The share of each label among `outcomes`, with intervals from the same resamples."""
    unknown = set(outcomes) - set(labels)
    if unknown:
        raise ValueError(f"outcomes {sorted(unknown)} are not among {list(labels)}")
    codes = np.array([labels.index(o) for o in outcomes])
    _check(len(codes), n_resamples, confidence)
    drawn = codes[_resample_indices(len(codes), n_resamples, seed)]
    result = {}
    for k, label in enumerate(labels):
        low, high = _interval((drawn == k).mean(axis=1), confidence)
        result[label] = Estimate(float((codes == k).mean()), low, high, len(codes))
    return result


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
               confidence: float = DEFAULT_CONFIDENCE, seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """Mean score per judge, model and category (plus "all"; and "all" per turn), with intervals.

    `turn` is None for all turns together. A group whose items are all unscored has no estimate.
    """
    rows_of_mode = frame.filter(pl.col("mode") == mode)
    out: list[dict[str, Any]] = []
    for keys, turn_col in ((["judge_model", "model", "category"], False), (["judge_model", "model"], False),
                           (["judge_model", "model", "turn"], True)):
        for values, group in _groups(rows_of_mode, keys):
            scored = group.filter(pl.col("status") == "scored")["score"].to_list()
            est = bootstrap_mean(scored, n_resamples=n_resamples, confidence=confidence, seed=seed) if scored else None
            out.append({
                "judge_model": values["judge_model"], "model": values["model"],
                "category": values.get("category", "all"),
                "turn": values["turn"] if turn_col else None,
                "total": group.height, "unscored": group.height - len(scored),
                "score": est.as_dict() if est else None,
            })
    return out


def pair_rows(frame: pl.DataFrame, *, n_resamples: int = DEFAULT_RESAMPLES,
              confidence: float = DEFAULT_CONFIDENCE, seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """Win/tie/loss of each model against its baseline (per judge; overall and per category), with
    intervals, and the position consistency rate: the share of scored comparisons whose two orders
    agreed. Inconsistent comparisons are already ties; `inconsistent` counts them."""
    pairs = frame.filter(pl.col("mode") == "pair")
    out: list[dict[str, Any]] = []
    for keys in (["judge_model", "model", "baseline"], ["judge_model", "model", "baseline", "category"]):
        for values, group in _groups(pairs, keys):
            scored = group.filter(pl.col("status") == "scored")
            outcomes = [_OUTCOME_OF_WINNER[w] for w in scored["winner"].to_list()]
            rates = (bootstrap_rates(outcomes, n_resamples=n_resamples, confidence=confidence, seed=seed)
                     if outcomes else {})
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
