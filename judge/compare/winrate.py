"""Raw and length-controlled win rates against the baseline.

Raw: the share of a model's verdicts it won, a tie counting half. Length-controlled, after
AlpacaEval 2: a logistic regression of each verdict's outcome on the answers' length difference,

    P(model wins) = sigmoid(b0 + b1 * tanh(delta / sd(delta))),   delta = len(model) - len(baseline),

fitted per model; the length-controlled win rate is sigmoid(b0), what the model would win if its
answers were as long as the baseline's. tanh bounds the influence of a few very long answers; the
standard deviation is the model's own. (AlpacaEval also regresses on the instruction's difficulty;
with one baseline and both orders of every question, that term is left out.)

Reading the fit at equal length is an interpolation only when the model's answers are sometimes
shorter and sometimes longer than the baseline's. When (nearly) all are longer, or all shorter
(under `MIN_SIDE` of them on one side), quality and length cannot be told apart by these data, and
the length-controlled rate is None rather than an extrapolation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from judge.compare.bt import fit_arrays, sigmoid


MIN_SIDE = 0.05


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


def win_rates(outcomes: Sequence[float], deltas: Sequence[float], *, l2: float = 1e-3) -> WinRates:
    """`outcomes` 1/0.5/0 per verdict, `deltas` the length differences (model minus baseline)."""
    if len(outcomes) != len(deltas):
        raise ValueError("one length difference per outcome")
    if not outcomes:
        raise ValueError("no verdicts to compute a win rate from")
    y = np.asarray(outcomes, dtype=float)
    d = np.asarray(deltas, dtype=float)
    if min((d <= 0).mean(), (d >= 0).mean()) < MIN_SIDE:
        return WinRates(raw=float(y.mean()), length_controlled=None, length_slope=None, n=len(y))
    x = np.column_stack([np.ones_like(y), length_feature(deltas)])
    b = fit_arrays(x, y, np.ones_like(y), l2=l2)
    return WinRates(raw=float(y.mean()), length_controlled=float(sigmoid(b[0])), length_slope=float(b[1]), n=len(y))
