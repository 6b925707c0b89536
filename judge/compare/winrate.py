"""Raw and length-controlled win rates against the baseline.

Raw: the share of a model's verdicts it won, a tie counting half. Length-controlled, after
AlpacaEval 2: a logistic regression of each verdict's outcome on the answers' length difference,
read at equal length. Two forms:

- `win_rates` (length only), per model:

      P(model wins) = sigmoid(b0 + b1 * tanh(delta / sd(delta))),   delta = len(model) - len(baseline),

  and the rate is sigmoid(b0). tanh bounds the influence of a few very long answers; the standard
  deviation is the model's own.

- `difficulty_win_rates` (length and question difficulty), all models of a comparison together:

      P(model m wins on question q) = sigmoid(theta_m + phi_m * tanh(delta / sd_m) + gamma_q),

  and model m's rate is the mean over its verdicts of sigmoid(theta_m + gamma_q): the prediction at
  equal length, averaged over the questions, as AlpacaEval 2 averages over its instructions.
  AlpacaEval estimates each instruction's difficulty once, from many models; a comparison has only
  its own few models, so gamma_q is fitted with them, nearly free (`DIFFICULTY_L2` only keeps a
  question that every model won, or lost, finite). Without it, a difficulty that lengths follow
  (longer answers where the baseline wins more) is read as the judge's taste for length or against
  it (bench/results/compare_stats.json plants one and shows the difference). With gamma_q, the
  length slope rests on the differences within a question (between turns and between models), so
  where the length feature barely varies within questions (`MIN_WITHIN`), there is no such rate.

Reading the fit at equal length is an interpolation only when the model's answers are sometimes
shorter and sometimes longer than the baseline's. When (nearly) all are longer, or all shorter
(under `MIN_SIDE` of them on one side), quality and length cannot be told apart by these data, and
the length-controlled rate is None rather than an extrapolation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from judge.compare.bt import fit_arrays, sigmoid


MIN_SIDE = 0.05
MIN_WITHIN = 0.05  # share of the length feature's variance within questions
DIFFICULTY_L2 = 0.01


@dataclass(frozen=True)
class WinRates:
    raw: float  # 0..1
    length_controlled: float | None  # 0..1; None when the lengths never cross the baseline's
    length_slope: float | None  # b1: how much the judge's verdicts follow the length difference
    n: int


def length_feature(deltas: Sequence[float]) -> np.ndarray:
    d = np.asarray(deltas, dtype=float)
    sd = float(d.std())
    return np.tanh(d / sd) if sd > 0 else np.zeros_like(d)


def _one_sided(deltas: np.ndarray) -> bool:
    return bool(min((deltas <= 0).mean(), (deltas >= 0).mean()) < MIN_SIDE)


def win_rates(outcomes: Sequence[float], deltas: Sequence[float], *, l2: float = 1e-3) -> WinRates:
    """`outcomes` 1/0.5/0 per verdict, `deltas` the length differences (model minus baseline)."""
    if len(outcomes) != len(deltas):
        raise ValueError("one length difference per outcome")
    if not outcomes:
        raise ValueError("no verdicts to compute a win rate from")
    y = np.asarray(outcomes, dtype=float)
    d = np.asarray(deltas, dtype=float)
    if _one_sided(d):
        return WinRates(raw=float(y.mean()), length_controlled=None, length_slope=None, n=len(y))
    x = np.column_stack([np.ones_like(y), length_feature(deltas)])
    b = fit_arrays(x, y, np.ones_like(y), l2=l2)
    return WinRates(raw=float(y.mean()), length_controlled=float(sigmoid(b[0])), length_slope=float(b[1]), n=len(y))


@dataclass(frozen=True)
class ModelVerdicts:
    """One model's verdicts against the baseline: outcome, length difference and question of each."""

    outcomes: Sequence[float]
    deltas: Sequence[float]
    questions: Sequence[str]


@dataclass(frozen=True)
class DifficultyRate:
    length_controlled: float  # 0..1
    length_slope: float  # phi_m


def _newton(m: np.ndarray, q: np.ndarray, f: np.ndarray, y: np.ndarray, models: int, questions: int, *,
            l2: float, difficulty_l2: float, iterations: int = 100, tol: float = 1e-10) -> np.ndarray:
    """[theta (models), phi (models), gamma (questions)] of the penalised logistic regression; the
    Hessian is assembled from index sums, so no (verdicts x questions) matrix is built."""
    k = 2 * models + questions
    cols = np.stack([m, models + m, 2 * models + q])  # the three nonzero columns of each verdict
    vals = np.stack([np.ones_like(f), f, np.ones_like(f)])
    ridge = np.concatenate([np.full(2 * models, l2), np.full(questions, difficulty_l2)])
    beta = np.zeros(k)
    for _ in range(iterations):
        eta = beta[m] + beta[models + m] * f + beta[2 * models + q]
        p = sigmoid(eta)
        grad = -ridge * beta + sum(np.bincount(c, v * (y - p), minlength=k) for c, v in zip(cols, vals, strict=True))
        weight = p * (1 - p)
        flat = sum(np.bincount(cols[a] * k + cols[b], weight * vals[a] * vals[b], minlength=k * k)
                   for a in range(3) for b in range(3))
        hess = flat.reshape(k, k) + np.diag(ridge)
        step = np.linalg.solve(hess, grad)
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            break
    return beta


def difficulty_win_rates(verdicts: Mapping[str, ModelVerdicts], *, l2: float = 1e-3,
                         difficulty_l2: float = DIFFICULTY_L2) -> dict[str, DifficultyRate | None]:
    """The length-controlled win rate with a difficulty term per question, for every model whose
    lengths cross the baseline's (the others: None), fitted together. All None when the length
    feature barely varies within questions."""
    out: dict[str, DifficultyRate | None] = dict.fromkeys(verdicts)
    usable = [name for name, v in verdicts.items() if v.outcomes and not _one_sided(np.asarray(v.deltas, float))]
    for name in usable:
        v = verdicts[name]
        if not len(v.outcomes) == len(v.deltas) == len(v.questions):
            raise ValueError(f"{name}: one length difference and one question per outcome")
    if not usable:
        return out
    features = [length_feature(verdicts[n].deltas) for n in usable]
    f = np.concatenate(features)
    y = np.concatenate([np.asarray(verdicts[n].outcomes, dtype=float) for n in usable])
    m = np.concatenate([np.full(len(x), i) for i, x in enumerate(features)])
    names, q = np.unique(np.concatenate([np.asarray(verdicts[n].questions, dtype=str) for n in usable]),
                         return_inverse=True)
    q_mean = np.bincount(q, weights=f) / np.bincount(q)
    total = float(((f - f.mean()) ** 2).sum())
    if total == 0 or float(((f - q_mean[q]) ** 2).sum()) < MIN_WITHIN * total:
        return out
    beta = _newton(m, q, f, y, len(usable), len(names), l2=l2, difficulty_l2=difficulty_l2)
    at_equal_length = sigmoid(beta[m] + beta[2 * len(usable) + q])
    for i, name in enumerate(usable):
        out[name] = DifficultyRate(float(at_equal_length[m == i].mean()), float(beta[len(usable) + i]))
    return out
