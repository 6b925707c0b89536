"""Bradley-Terry fit, bootstrap and length-controlled win rate against independent computations and
a judge of planted strengths, position bias and length bias."""

from __future__ import annotations

import math
import random
from statistics import NormalDist

import numpy as np
import pytest

from judge.compare.bt import Game, bootstrap, fit, game_from_preference, resample_counts, sigmoid
from judge.compare.planted import (
    difficulty_verdicts,
    equal_length_win_rate,
    length_outcomes,
    planted_games,
    strength_limit,
)
from judge.compare.winrate import ModelVerdicts, difficulty_win_rates, win_rates


def _games(thetas: dict[str, float], questions: int, seed: int, *, position: float = 0.15,
           question_sd: float = 0.0) -> list[Game]:
    return planted_games(thetas, questions, seed, position=position, question_sd=question_sd)


def _mm_fit(games: list[Game], anchor: str, iterations: int = 5000) -> dict[str, float]:
    """Hunter's MM algorithm for Bradley-Terry in plain Python (weighted wins, ties as half)."""
    players = sorted({g.first for g in games} | {g.second for g in games})
    wins = dict.fromkeys(players, 0.0)
    pairs: dict[tuple[str, str], float] = {}
    for g in games:
        wins[g.first] += g.weight * g.y
        wins[g.second] += g.weight * (1 - g.y)
        key = tuple(sorted((g.first, g.second)))
        pairs[key] = pairs.get(key, 0.0) + g.weight
    p = dict.fromkeys(players, 1.0)
    for _ in range(iterations):
        new = {}
        for i in players:
            denom = sum(n / (p[a] + p[b]) for (a, b), n in pairs.items() if i in (a, b))
            new[i] = wins[i] / denom
        p = {i: v / new[anchor] for i, v in new.items()}
    return {i: math.log(v) for i, v in p.items()}


def _gradient_logistic(games: list[Game], anchor: str, steps: int = 20000, lr: float = 0.5) -> dict[str, float]:
    """A plain logistic regression by gradient ascent on the mean weighted log-likelihood."""
    players = sorted({g.first for g in games} | {g.second for g in games} - {anchor})
    theta = dict.fromkeys(players, 0.0)
    total = sum(g.weight for g in games)
    for _ in range(steps):
        grad = dict.fromkeys(players, 0.0)
        for g in games:
            z = theta.get(g.first, 0.0) - theta.get(g.second, 0.0)
            r = g.weight * (g.y - 1 / (1 + math.exp(-z))) / total
            if g.first in grad:
                grad[g.first] += r
            if g.second in grad:
                grad[g.second] -= r
        for k in players:
            theta[k] += lr * grad[k]
    return {anchor: 0.0, **theta}


def test_the_fit_matches_the_mm_algorithm_and_a_plain_logistic_regression() -> None:
    rng = random.Random(4)
    games = _games({"m1": -0.4, "m2": 0.5}, questions=30, seed=1)
    # games among the models too, so the fit is not only model-vs-baseline
    games += [game_from_preference(f"x{i}", "m1", "m2", rng.choice([-2, -1, 0, 1, 2])) for i in range(40)]
    ours = fit(games, "base", l2=0.0)
    mm = _mm_fit(games, "base")
    assert ours == pytest.approx(mm, abs=1e-6)
    few = games[::9]
    assert fit(few, "base", l2=0.0) == pytest.approx(_gradient_logistic(few, "base"), abs=1e-3)


def test_strong_verdicts_weigh_three_and_ties_half() -> None:
    games = [game_from_preference("q", "m", "base", 2), game_from_preference("q", "m", "base", -1),
             game_from_preference("q", "m", "base", 0)]
    # weighted share of wins: (3*1 + 1*0 + 1*0.5) / 5
    assert sigmoid(fit(games, "base", l2=0.0)["m"]) == pytest.approx(3.5 / 5)


def _quantile(xs: list[float], p: float) -> float:
    """numpy's default quantile: linear between order statistics."""
    xs = sorted(xs)
    pos = p * (len(xs) - 1)
    lo = math.floor(pos)
    return xs[lo] + (xs[min(lo + 1, len(xs) - 1)] - xs[lo]) * (pos - lo)


def test_the_bootstrap_matches_a_reference_that_duplicates_the_questions() -> None:
    games = _games({"m1": 0.3, "m2": -0.2}, questions=12, seed=3, question_sd=0.4)
    rounds, seed = 30, 11
    got = bootstrap(games, "base", rounds=rounds, seed=seed, l2=0.0, method="percentile")
    bca = bootstrap(games, "base", rounds=rounds, seed=seed, l2=0.0, method="bca")
    groups = sorted({g.group for g in games})
    refits: dict[str, list[float]] = {"m1": [], "m2": []}
    for counts in resample_counts(len(groups), rounds, seed):
        sample = [g for gi, q in enumerate(groups) for _ in range(counts[gi]) for g in games if g.group == q]
        theta = _mm_fit(sample, "base", iterations=400)
        for m in refits:
            refits[m].append(theta[m])
    # the jackknife: each question left out in turn
    jack = {m: [] for m in refits}
    for q in groups:
        theta = _mm_fit([g for g in games if g.group != q], "base", iterations=400)
        for m in jack:
            jack[m].append(theta[m])
    full = _mm_fit(games, "base", iterations=400)
    nd = NormalDist()
    for m, values in refits.items():
        assert got[m].low == pytest.approx(_quantile(values, 0.025), abs=1e-5)
        assert got[m].high == pytest.approx(_quantile(values, 0.975), abs=1e-5)
        assert got[m].low < got[m].theta < got[m].high
        # BCa by its textbook formulas
        z0 = nd.inv_cdf((sum(v < full[m] for v in values) + 0.5 * sum(v == full[m] for v in values)) / rounds)
        mean_jack = sum(jack[m]) / len(jack[m])
        a = sum((mean_jack - j) ** 3 for j in jack[m]) / (6 * sum((mean_jack - j) ** 2 for j in jack[m]) ** 1.5)
        z = nd.inv_cdf(0.025)
        low, high = (_quantile(values, nd.cdf(z0 + (z0 + zz) / (1 - a * (z0 + zz)))) for zz in (z, -z))
        assert (bca[m].low, bca[m].high) == (pytest.approx(low, abs=1e-5), pytest.approx(high, abs=1e-5))


def test_the_fit_converges_to_the_strength_limit_not_to_the_planted_theta() -> None:
    # Question effects pull the weighted share of wins toward 50%: the truth of the fit is its limit.
    planted, sd = 0.8, 0.7
    limit = strength_limit(planted, sd=sd)
    assert strength_limit(planted, sd=0.0) == pytest.approx(planted, abs=1e-9)  # no effects: theta itself
    theta = fit(_games({"m": planted}, questions=20_000, seed=5, question_sd=sd), "base")["m"]
    assert abs(theta - limit) < 0.03 < planted - limit - 0.03


def test_every_turn_of_a_drawn_question_comes_along() -> None:
    counts = resample_counts(5, 50, 0)
    assert counts.shape == (50, 5) and (counts.sum(axis=1) == 5).all()


def test_the_ranking_of_planted_strengths_is_recovered_despite_a_position_bias() -> None:
    planted = {"weak": -0.8, "near": -0.1, "good": 0.4, "best": 1.0}
    theta = fit(_games(planted, questions=80, seed=7, position=0.25), "base")
    assert sorted(planted, key=theta.get) == ["weak", "near", "good", "best"]
    assert theta["base"] == 0.0 and theta["near"] < 0 < theta["good"]


def test_the_intervals_cover_the_strength_limits_about_95_percent_of_the_time() -> None:
    # a smoke test of 160 intervals; bench/compare_stats.py measures the coverage over 2,000 repetitions
    planted = {"a": -0.6, "b": -0.2, "c": 0.3, "d": 0.8}
    truth = {m: strength_limit(t, sd=0.5) for m, t in planted.items()}
    covered = total = 0
    for rep in range(40):
        intervals = bootstrap(_games(planted, questions=40, seed=100 + rep, question_sd=0.5), "base", rounds=500,
                              seed=rep)
        for model, theta in truth.items():
            total += 1
            covered += intervals[model].low <= theta <= intervals[model].high
    assert 0.88 <= covered / total <= 1.0, f"coverage {covered}/{total}"


def test_the_length_controlled_win_rate_removes_most_of_a_planted_length_bias() -> None:
    rng = random.Random(5)
    verbose = win_rates(*length_outcomes(rng, 1.6))
    concise = win_rates(*length_outcomes(rng, 0.7))
    raw_gap = verbose.raw - concise.raw
    lc_gap = verbose.length_controlled - concise.length_controlled
    assert raw_gap > 0.15  # equal quality, yet the longer answers win more often
    assert abs(lc_gap) < 0.35 * raw_gap
    assert abs(verbose.length_controlled - 0.5) < 0.06 and abs(concise.length_controlled - 0.5) < 0.06
    assert verbose.length_slope > 0


def test_without_a_length_difference_the_two_rates_agree() -> None:
    out = win_rates([1, 0, 0.5, 1, 1, 0], [0.0] * 6)
    assert out.raw == pytest.approx(0.5833, abs=1e-3)
    assert out.length_controlled == pytest.approx(out.raw, abs=1e-3)
    always_longer = win_rates([1, 0, 1, 1, 0, 1], [50.0, 80, 120, 60, 90, 70])
    assert always_longer.length_controlled is None and always_longer.raw == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="no verdicts"):
        win_rates([], [])
    assert np.isfinite(fit([game_from_preference("q", "m", "base", 2)], "base")["m"])  # a clean sweep stays finite


def test_a_difficulty_that_lengths_follow_misleads_the_length_only_rate_not_the_one_with_difficulty() -> None:
    models = {"verbose": (0.0, 1.4), "concise": (0.0, 0.7), "good": (0.5, 1.0)}
    errors: dict[str, list[tuple[float, float]]] = {m: [] for m in models}
    for rep in range(4):
        data = difficulty_verdicts(random.Random(rep), models, 300, sensitivity=0.8, length_follows=0.3)
        with_difficulty = difficulty_win_rates({m: ModelVerdicts(*v) for m, v in data.items()})
        for m, (theta, _) in models.items():
            truth = equal_length_win_rate(theta, sensitivity=0.8)
            errors[m].append((win_rates(*data[m][:2]).length_controlled - truth,
                              with_difficulty[m].length_controlled - truth))
    mean = {m: np.mean(e, axis=0) for m, e in errors.items()}
    assert mean["verbose"][0] > 0.06  # length only: the verbose model still wins for its length
    assert all(abs(e[1]) < 0.025 for e in mean.values()), mean
    assert abs(mean["verbose"][1] - mean["concise"][1]) < 0.03 < mean["verbose"][0] - mean["concise"][0]


def test_the_difficulty_term_needs_length_differences_within_questions() -> None:
    rng = random.Random(2)
    data = difficulty_verdicts(rng, {"m": (0.2, 1.0)}, 100, sensitivity=0.5, length_follows=0.0, turns=1)
    # one turn, both orders: the same length difference twice per question, nothing within a question
    assert difficulty_win_rates({"m": ModelVerdicts(*data["m"])}) == {"m": None}
    two = difficulty_verdicts(rng, {"m": (0.2, 1.0), "long": (0.0, 3.0)}, 100, sensitivity=0.5, length_follows=0.0)
    out = difficulty_win_rates({m: ModelVerdicts(*v) for m, v in two.items()})
    assert out["long"] is None  # always longer than the baseline: no rate at equal length
    assert out["m"] is not None and 0.3 < out["m"].length_controlled < 0.8 and out["m"].length_slope > 0
    with pytest.raises(ValueError, match="one question per outcome"):
        difficulty_win_rates({"m": ModelVerdicts([1.0, 0.0], [5.0, -5.0], ["q"])})
