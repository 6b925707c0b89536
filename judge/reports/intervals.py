"""Bootstrap confidence intervals from replicates, for the report's means and rates (stats.py) and the
comparison's Bradley-Terry strengths (judge/compare/bt.py).

Both resample *questions* (clusters): every graded item of a drawn question (both turns, both orders
of a pairwise comparison) comes along as often as the question was drawn, because the items of one
question are not independent (an easy question is easy in both turns). A replicate is the statistic
recomputed with each question weighted by its count (`resample_counts`); the jackknife leaves out
one question at a time (`jackknife_counts`).

From the replicates, four intervals (`METHODS`):

- "percentile": the alpha and 1 - alpha quantiles of the replicates.
- "bca": Efron's bias-corrected and accelerated interval: the quantile levels are moved by the
  bias z0 (the share of replicates below the estimate, ties counting half) and the acceleration
  a (the skewness of the question-level jackknife), so a statistic whose spread changes with its
  value (a rate near 0 or 1, a score near the top of the scale) gets a lopsided interval.
- "expanded-percentile" and "expanded-bca" (the default): the same with the nominal level
  widened for the number of questions n, as Hesterberg (2015, "What teachers should know about the
  bootstrap") proposes: z_alpha is replaced by sqrt(n / (n - 1)) * t_{n-1, alpha}. The bootstrap
  draws from the sample, whose spread is (n-1)/n of the population's, and it treats that spread as
  known; the two factors undo both, which is what the percentile interval lacks at 40 or 80
  questions (bench/compare_stats.py measures the coverage of each method).

Student's t quantile is computed here (from the regularised incomplete beta function), because the
judge does not depend on scipy; a test holds it to scipy's.
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist
from typing import Literal

import numpy as np

Method = Literal["percentile", "bca", "expanded-percentile", "expanded-bca"]
METHODS: tuple[Method, ...] = ("percentile", "bca", "expanded-percentile", "expanded-bca")
DEFAULT_METHOD: Method = "expanded-bca"
METHOD_TEXT: dict[str, str] = {"percentile": "percentile", "bca": "BCa",
                               "expanded-percentile": "percentile, widened for the number of questions",
                               "expanded-bca": "BCa, widened for the number of questions"}
_NORMAL = NormalDist()


def resample_counts(n_groups: int, rounds: int, seed: int) -> np.ndarray:
    """(rounds, n_groups): how often each group is drawn in each bootstrap round.

    One (rounds, n_groups) draw of indices from `numpy.random.default_rng(seed)`, the draw that
    scipy.stats.bootstrap makes in one batch, counted per row."""
    draws = np.random.default_rng(seed).integers(0, n_groups, size=(rounds, n_groups))
    flat = (np.arange(rounds)[:, None] * n_groups + draws).ravel()
    return np.bincount(flat, minlength=rounds * n_groups).reshape(rounds, n_groups)


def jackknife_counts(n_groups: int) -> np.ndarray:
    """(n_groups, n_groups): row i leaves group i out."""
    return 1 - np.eye(n_groups, dtype=np.int64)


# --- Student's t without scipy ---------------------------------------------------------------------

def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def _beta_regularised(a: float, b: float, x: float) -> float:
    """I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    tail = 0.5 * _beta_regularised(df / 2, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


@lru_cache(maxsize=256)
def student_t_quantile(p: float, df: float) -> float:
    """The p quantile of Student's t with `df` degrees of freedom (bisection on the cdf)."""
    if not 0 < p < 1 or df <= 0:
        raise ValueError(f"a t quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -student_t_quantile(1 - p, df)
    if p == 0.5:
        return 0.0
    hi = max(1.0, _NORMAL.inv_cdf(p))
    while student_t_cdf(hi, df) < p:
        hi *= 2
    lo = 0.0
    while hi - lo > 1e-13 * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if student_t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


# --- intervals from replicates ---------------------------------------------------------------------

def nominal_z(confidence: float, n_groups: int, *, expanded: bool) -> float:
    """The lower z of the interval before any bias correction: z_alpha, or its small-sample expansion."""
    alpha = (1 - confidence) / 2
    if not expanded or n_groups < 2:
        return _NORMAL.inv_cdf(alpha)
    return math.sqrt(n_groups / (n_groups - 1)) * student_t_quantile(alpha, n_groups - 1)


def _acceleration(jackknife: np.ndarray) -> np.ndarray:
    """Efron's a from the leave-one-question-out estimates, (n, k) -> (k,); 0 where they do not vary."""
    d = jackknife.mean(axis=0) - jackknife
    num, den = (d**3).sum(axis=0), (d**2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = num / (6.0 * den**1.5)
    return np.where(den > 0, a, 0.0)


def _bias(point: np.ndarray, replicates: np.ndarray) -> np.ndarray:
    """z0: the normal quantile of the share of replicates below the estimate, ties counting half
    (ties within a relative 1e-9, so that sums taken in another order do not count as below)."""
    tol = 1e-9 * np.maximum(1.0, np.abs(point))
    below = (replicates < point - tol).sum(axis=0)
    ties = (np.abs(replicates - point) <= tol).sum(axis=0)
    share = (below + 0.5 * ties) / replicates.shape[0]
    share = np.clip(share, 0.5 / replicates.shape[0], 1 - 0.5 / replicates.shape[0])  # finite z0
    return np.array([_NORMAL.inv_cdf(float(s)) for s in share])


def _levels(z_low: float, z0: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BCa's quantile levels for the lower and the upper end."""
    ends = []
    for z in (z_low, -z_low):
        shifted = z0 + z
        den = 1 - a * shifted
        # den <= 0 only for an extreme acceleration: the end goes to the farthest replicate
        level = np.where(den > 0, z0 + shifted / np.where(den > 0, den, 1.0), np.sign(shifted) * np.inf)
        ends.append(np.array([_NORMAL.cdf(float(v)) if np.isfinite(v) else float(v > 0) for v in level]))
    return ends[0], ends[1]


def endpoints(point: np.ndarray, replicates: np.ndarray, jackknife: np.ndarray | None, *, confidence: float,
              n_groups: int, method: Method = DEFAULT_METHOD) -> tuple[np.ndarray, np.ndarray]:
    """Low and high ends, one per column: `point` (k,), `replicates` (rounds, k), `jackknife` (n, k)
    (needed by the BCa methods). Quantiles are numpy's linear interpolation."""
    if method not in METHODS:
        raise ValueError(f"unknown interval method {method!r}; one of {list(METHODS)}")
    point, replicates = np.atleast_1d(np.asarray(point, dtype=float)), np.asarray(replicates, dtype=float)
    if replicates.ndim == 1:
        replicates = replicates[:, None]
    z_low = nominal_z(confidence, n_groups, expanded=method.startswith("expanded"))
    if not method.endswith("bca"):
        p = _NORMAL.cdf(z_low)
        low, high = np.quantile(replicates, [p, 1 - p], axis=0)
        return low, high
    if jackknife is None:
        raise ValueError("a BCa interval needs the jackknife estimates")
    jackknife = np.asarray(jackknife, dtype=float)
    if jackknife.ndim == 1:
        jackknife = jackknife[:, None]
    z0 = _bias(point, replicates)
    a = _acceleration(jackknife)
    p_low, p_high = _levels(z_low, z0, a)
    low = np.array([np.quantile(replicates[:, k], p_low[k]) for k in range(replicates.shape[1])])
    high = np.array([np.quantile(replicates[:, k], p_high[k]) for k in range(replicates.shape[1])])
    return low, high
