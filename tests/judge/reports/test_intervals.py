"""Bootstrap intervals: question-level resampling, BCa and its small-sample expansion, against scipy
and against plain-Python references."""

from __future__ import annotations

import math
import random
from statistics import NormalDist

import numpy as np
import pytest

from judge.reports.intervals import (
    METHODS,
    endpoints,
    jackknife_counts,
    nominal_z,
    resample_counts,
    student_t_quantile,
)
from judge.reports.stats import bootstrap_mean, bootstrap_rates

_RNG = random.Random(3)
CONTINUOUS = [round(_RNG.uniform(1, 10), 6) for _ in range(25)]  # no two resamples tie


def test_student_t_quantile_matches_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 5, 39, 79, 1000, 100_000):
        for p in (0.001, 0.0226, 0.025, 0.4, 0.975):
            assert student_t_quantile(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-9, abs=1e-12)
    with pytest.raises(ValueError):
        student_t_quantile(1.0, 3)


def test_resample_counts_are_scipys_draws_counted() -> None:
    counts = resample_counts(7, 40, seed=5)
    draws = np.random.default_rng(5).integers(0, 7, size=(40, 7))
    assert counts.shape == (40, 7) and (counts.sum(axis=1) == 7).all()
    assert (counts == np.stack([np.bincount(r, minlength=7) for r in draws])).all()
    assert (jackknife_counts(3) == [[0, 1, 1], [1, 0, 1], [1, 1, 0]]).all()


@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_bca_with_one_item_per_question_is_scipys_bca(confidence: float) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    est = bootstrap_mean(CONTINUOUS, n_resamples=2000, seed=9, confidence=confidence, method="bca")
    res = scipy_stats.bootstrap((np.asarray(CONTINUOUS),), np.mean, n_resamples=2000, method="BCa",
                                confidence_level=confidence, rng=np.random.default_rng(9))
    assert (est.low, est.high) == (pytest.approx(res.confidence_interval.low, abs=1e-9),
                                   pytest.approx(res.confidence_interval.high, abs=1e-9))


def test_the_expansion_is_bca_at_the_level_a_t_with_n_minus_1_degrees_implies() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    n = len(CONTINUOUS)
    z = math.sqrt(n / (n - 1)) * scipy_stats.t.ppf(0.025, n - 1)
    assert nominal_z(0.95, n, expanded=True) == pytest.approx(z, rel=1e-9)
    level = 1 - 2 * NormalDist().cdf(z)  # about 0.943 questions of 25 widen a 95% interval to this
    est = bootstrap_mean(CONTINUOUS, n_resamples=2000, seed=4)  # the default: expanded BCa
    res = scipy_stats.bootstrap((np.asarray(CONTINUOUS),), np.mean, n_resamples=2000, method="BCa",
                                confidence_level=level, rng=np.random.default_rng(4))
    assert (est.low, est.high) == (pytest.approx(res.confidence_interval.low, abs=1e-9),
                                   pytest.approx(res.confidence_interval.high, abs=1e-9))
    plain = bootstrap_mean(CONTINUOUS, n_resamples=2000, seed=4, method="bca")
    assert est.low < plain.low and plain.high < est.high


def test_both_turns_of_a_question_move_together() -> None:
    per_question = CONTINUOUS[:12]
    values = [v for v in per_question for _ in range(2)]  # two turns with the same score
    groups = [f"q{i}" for i in range(12) for _ in range(2)]
    for method in METHODS:
        clustered = bootstrap_mean(values, groups, n_resamples=1500, seed=2, method=method)
        once = bootstrap_mean(per_question, [f"q{i}" for i in range(12)], n_resamples=1500, seed=2, method=method)
        assert (clustered.low, clustered.high) == (pytest.approx(once.low), pytest.approx(once.high))
        assert clustered.n == 24 and clustered.questions == 12
        items = bootstrap_mean(values, n_resamples=1500, seed=2, method=method)  # turns as separate items
        assert items.high - items.low < 0.8 * (clustered.high - clustered.low)


def _reference_bca(values: list[float], groups: list[str], n_resamples: int, seed: int, confidence: float
                   ) -> tuple[float, float]:
    """BCa over questions in plain Python: the resamples spelled out as lists of items, the jackknife
    by leaving each question out, the bias and acceleration by their textbook formulas."""
    qs = sorted(set(groups))
    items = {q: [v for v, g in zip(values, groups, strict=True) if g == q] for q in qs}
    point = sum(values) / len(values)
    draws = np.random.default_rng(seed).integers(0, len(qs), size=(n_resamples, len(qs))).tolist()
    means = []
    for row in draws:
        drawn = [v for i in row for v in items[qs[i]]]
        means.append(sum(drawn) / len(drawn))
    jack = []
    for q in qs:
        kept = [v for g in qs if g != q for v in items[g]]
        jack.append(sum(kept) / len(kept))
    mean_jack = sum(jack) / len(jack)
    a = sum((mean_jack - j) ** 3 for j in jack) / (6 * sum((mean_jack - j) ** 2 for j in jack) ** 1.5)
    nd = NormalDist()
    z0 = nd.inv_cdf((sum(m < point for m in means) + 0.5 * sum(m == point for m in means)) / n_resamples)
    ordered = sorted(means)

    def quantile(p: float) -> float:
        h = (len(ordered) - 1) * p
        lo = math.floor(h)
        return ordered[lo] + (h - lo) * (ordered[min(lo + 1, len(ordered) - 1)] - ordered[lo])

    z = nd.inv_cdf((1 - confidence) / 2)
    ends = [nd.cdf(z0 + (z0 + zz) / (1 - a * (z0 + zz))) for zz in (z, -z)]
    return quantile(ends[0]), quantile(ends[1])


def test_bca_over_questions_of_unequal_size_matches_a_plain_python_reference() -> None:
    rng = random.Random(8)
    values, groups = [], []
    for q in range(15):
        for _ in range(rng.choice([1, 2, 2, 3])):  # unscored turns leave some questions with fewer items
            values.append(round(rng.uniform(1, 10), 5))
            groups.append(f"q{q:02d}")
    est = bootstrap_mean(values, groups, n_resamples=800, seed=6, method="bca")
    low, high = _reference_bca(values, groups, 800, 6, 0.95)
    assert est.value == pytest.approx(sum(values) / len(values))
    assert (est.low, est.high) == (pytest.approx(low, abs=1e-9), pytest.approx(high, abs=1e-9))


def test_rates_resample_questions_and_one_question_gives_no_width() -> None:
    outcomes = ["win", "win", "tie", "loss", "win", "loss"]
    rates = bootstrap_rates(outcomes, groups=["a", "a", "b", "b", "c", "c"], n_resamples=500)
    assert rates["win"].questions == 3 and rates["win"].value == pytest.approx(0.5)
    single = bootstrap_mean([3.0, 7.0], ["q", "q"])
    assert (single.low, single.value, single.high) == (5.0, 5.0, 5.0)
    with pytest.raises(ValueError, match="one question per value"):
        bootstrap_mean([1.0, 2.0], ["q"])


def test_endpoints_refuse_an_unknown_method_and_bca_without_a_jackknife() -> None:
    reps = np.random.default_rng(0).normal(size=(100, 2))
    with pytest.raises(ValueError, match="unknown interval method"):
        endpoints(np.zeros(2), reps, None, confidence=0.95, n_groups=10, method="basic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="jackknife"):
        endpoints(np.zeros(2), reps, None, confidence=0.95, n_groups=10, method="bca")
