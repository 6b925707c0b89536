"""Statistics: the bootstrap against independent reference computations, and the report tables."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from judge.grading.parse import Score, Unparsed, Verdict
from judge.reports.stats import (
    bootstrap_mean,
    bootstrap_rates,
    judgments_frame,
    latest_judgments,
    pair_rows,
    score_rows,
    unscored_rows,
    verbosity_rows,
)
from judge.grading.verdicts import pair_judgment, single_judgment
from schemas import Answer, Question

SCORES = [7, 8, 3, 9, 6, 6, 10, 2, 8, 7, 5, 9, 4, 8, 7, 6, 9, 3, 7, 8, 1, 6]


def reference_percentile_bootstrap(values: list[float], n_resamples: int, confidence: float, seed: int
                                   ) -> tuple[float, float]:
    """A plain-Python percentile bootstrap: only the index draws come from numpy's generator
    (the same stream, drawn the same way); means and quantiles are computed by hand."""
    n = len(values)
    draws = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n)).tolist()
    means = sorted(sum(values[i] for i in row) / n for row in draws)

    def quantile(q: float) -> float:  # linear interpolation between order statistics (Hyndman-Fan 7)
        h = (len(means) - 1) * q
        lo = math.floor(h)
        hi = min(lo + 1, len(means) - 1)
        return means[lo] + (h - lo) * (means[hi] - means[lo])

    alpha = (1 - confidence) / 2
    return quantile(alpha), quantile(1 - alpha)


@pytest.mark.parametrize(("n_resamples", "confidence", "seed"), [(2000, 0.95, 0), (999, 0.9, 12345)])
def test_bootstrap_mean_matches_a_plain_python_reference(n_resamples: int, confidence: float, seed: int) -> None:
    est = bootstrap_mean(SCORES, n_resamples=n_resamples, confidence=confidence, seed=seed, method="percentile")
    low, high = reference_percentile_bootstrap([float(s) for s in SCORES], n_resamples, confidence, seed)
    assert est.value == pytest.approx(sum(SCORES) / len(SCORES), abs=1e-12)
    assert est.low == pytest.approx(low, abs=1e-9)
    assert est.high == pytest.approx(high, abs=1e-9)
    assert est.n == len(SCORES)
    assert est.low < est.value < est.high


def test_bootstrap_mean_matches_scipy_percentile_bootstrap() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    est = bootstrap_mean(SCORES, n_resamples=3000, seed=7, method="percentile")
    res = scipy_stats.bootstrap((np.asarray(SCORES, dtype=float),), np.mean, n_resamples=3000,
                                method="percentile", confidence_level=0.95, rng=np.random.default_rng(7))
    assert est.low == pytest.approx(res.confidence_interval.low, abs=1e-9)
    assert est.high == pytest.approx(res.confidence_interval.high, abs=1e-9)


def test_bootstrap_is_reproducible_and_seed_dependent() -> None:
    values = [x / 7 for x in range(1, 30)]  # continuous enough that the quantiles move with the draws
    assert bootstrap_mean(values, seed=3) == bootstrap_mean(values, seed=3)
    assert bootstrap_mean(values, seed=3) != bootstrap_mean(values, seed=4)


def test_bootstrap_of_constant_values_has_zero_width_and_empty_input_is_refused() -> None:
    est = bootstrap_mean([5, 5, 5])
    assert (est.value, est.low, est.high) == (5.0, 5.0, 5.0)
    with pytest.raises(ValueError, match="no values"):
        bootstrap_mean([])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_mean([1, 2], confidence=1.5)


def test_bootstrap_rates_match_the_reference_for_each_outcome() -> None:
    rng = random.Random(1)
    outcomes = [rng.choice(["win", "win", "tie", "loss"]) for _ in range(40)]
    rates = bootstrap_rates(outcomes, seed=11, n_resamples=1500, method="percentile")
    assert sum(r.value for r in rates.values()) == pytest.approx(1.0)
    for label, est in rates.items():
        indicator = [1.0 if o == label else 0.0 for o in outcomes]
        low, high = reference_percentile_bootstrap(indicator, 1500, 0.95, 11)
        assert est.value == pytest.approx(sum(indicator) / len(indicator))
        assert (est.low, est.high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    with pytest.raises(ValueError, match="not among"):
        bootstrap_rates(["win", "draw"])


# --- tables ---------------------------------------------------------------------------------------

def q(i: int, category: str) -> Question:
    return Question(question_id=f"q{i}", category=category, turns=["a", "b"], lang="en")


def single(i: int, category: str, turn: int, score: int | None, model: str = "lora"):
    outcome = Score(score, "r", "json") if score is not None else Unparsed("no score marker", "??")
    return single_judgment(question=q(i, category), model=model, turn=turn, judge_model="judge", outcome=outcome)


def test_score_rows_exclude_unscored_items_and_count_them() -> None:
    js = [single(1, "math", 1, 8), single(1, "math", 2, 6), single(2, "math", 1, None),
          single(3, "writing", 1, 4), single(3, "writing", 2, 10)]
    rows = score_rows(judgments_frame(js), "single", n_resamples=200)
    by = {(r["category"], r["turn"]): r for r in rows}
    assert by[("math", None)]["score"]["value"] == 7.0 and by[("math", None)]["unscored"] == 1
    assert by[("math", None)]["total"] == 3
    assert by[("all", None)]["score"]["value"] == pytest.approx((8 + 6 + 4 + 10) / 4)
    assert by[("all", 1)]["score"]["value"] == 6.0 and by[("all", 2)]["score"]["value"] == 8.0
    assert by[("writing", None)]["unscored"] == 0


def test_a_group_with_only_unscored_items_has_no_score() -> None:
    rows = score_rows(judgments_frame([single(1, "math", 1, None)]), "single", n_resamples=50)
    assert all(r["score"] is None and r["unscored"] == 1 for r in rows)


def test_pair_rows_report_rates_and_position_consistency() -> None:
    def p(i: int, first: str, second: str):
        return pair_judgment(question=q(i, "stem"), model="lora", baseline="base", turn=1, judge_model="judge",
                             model_first=Verdict(first, "", "json"), baseline_first=Verdict(second, "", "json"))  # type: ignore[arg-type]
    js = [p(1, "A", "B"), p(2, "A", "B"), p(3, "B", "A"), p(4, "A", "A"), p(5, "tie", "tie"),
          pair_judgment(question=q(6, "stem"), model="lora", baseline="base", turn=1, judge_model="judge",
                        model_first=Unparsed("x", ""), baseline_first=Verdict("A", "", "json"))]
    row = next(r for r in pair_rows(judgments_frame(js), n_resamples=300) if r["category"] == "all")
    assert (row["total"], row["scored"], row["unscored"]) == (6, 5, 1)
    assert row["win"]["value"] == pytest.approx(2 / 5)
    assert row["loss"]["value"] == pytest.approx(1 / 5)
    assert row["tie"]["value"] == pytest.approx(2 / 5)  # one real tie, one inconsistency
    assert row["consistency"] == pytest.approx(4 / 5) and row["inconsistent"] == 1
    assert row["win"]["low"] <= row["win"]["value"] <= row["win"]["high"]


def test_latest_judgment_of_an_item_wins() -> None:
    old, new = single(1, "math", 1, None), single(1, "math", 1, 9)
    kept = latest_judgments([old, single(2, "math", 1, 3), new])
    assert len(kept) == 2 and kept[-1].score == 9.0


def test_unscored_rows_give_the_rate_and_reasons() -> None:
    js = [single(1, "math", 1, None), single(2, "math", 1, None), single(3, "math", 1, 5), single(4, "math", 1, 6)]
    (row,) = unscored_rows(judgments_frame(js))
    assert (row["unscored"], row["total"], row["rate"]) == (2, 4, 0.5)
    assert row["top_reasons"] == [{"reason": "unparsed: no score marker", "count": 2}]


def test_verbosity_rows_average_characters_and_tokens_per_turn() -> None:
    answers = [Answer(question_id="q1", model="lora", turns=["abcd", "ab"], tokens=[4, 2]),
               Answer(question_id="q2", model="lora", turns=["abcdef"], tokens=[6]),
               Answer(question_id="q1", model="api", turns=["abc"])]
    rows = {r["model"]: r for r in verbosity_rows(answers)}
    assert rows["lora"]["mean_chars"] == 4.0 and rows["lora"]["mean_tokens"] == 4.0
    assert rows["lora"]["answers"] == 2 and rows["lora"]["turns"] == 3
    assert rows["api"]["mean_tokens"] is None
