"""Bradley-Terry scores from graded verdicts, with bootstrap intervals over questions.

One verdict (one order of one comparison) is one game between two players. Its outcome `y` is 1
(the first player won), 0.5 (tie: half a win each) or 0, and its weight is 3 for a strong verdict
("much better"/"much worse") and 1 otherwise, as Arena-Hard-Auto counts them. The fit is the
weighted logistic regression

    P(i beats j) = sigmoid(theta_i - theta_j),    theta_anchor = 0,

maximised by Newton's method. A tiny ridge (`l2`) keeps a player that won every game finite; its
score then sits near 100% instead of at infinity. The bootstrap draws the questions with
replacement (every game of a drawn question, both turns and both orders, comes along as many times
as it was drawn) and refits; the jackknife leaves out one question at a time. The interval is
judge.reports.intervals' (by default the BCa interval with the small-sample expansion;
bench/results/compare_stats.json measures the coverage of each method).

The log-likelihood is linear in y, so the fit needs only each question's weighted wins and weights
per pairing (`Tables`); every refit is the same Newton iteration on those sums, all rounds at once,
started from the full-sample fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from judge.reports.intervals import DEFAULT_METHOD, Method, endpoints, jackknife_counts, resample_counts

STRONG_WEIGHT = 3.0  # Arena-Hard-Auto counts "A>>B" as three wins
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Game:
    """One verdict: `first` against `second`, outcome `y` for `first`, in resampling unit `group`."""

    group: str
    first: str
    second: str
    y: float  # 1, 0.5 or 0
    weight: float = 1.0


def game_from_preference(group: str, model: str, baseline: str, pref: int) -> Game:
    """A game from a model-perspective verdict: 2 much better, 1 better, 0 tie, -1 worse, -2 much worse."""
    if pref not in (-2, -1, 0, 1, 2):
        raise ValueError(f"a preference is -2..2, got {pref!r}")
    y = 1.0 if pref > 0 else 0.0 if pref < 0 else 0.5
    return Game(group, model, baseline, y, STRONG_WEIGHT if abs(pref) == 2 else 1.0)


def sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


@dataclass
class Design:
    """The games as arrays: design matrix over the free players (every player but the anchor)."""

    players: list[str]  # the anchor first
    x: np.ndarray  # (games, players - 1): +1 for first, -1 for second
    y: np.ndarray
    w: np.ndarray
    group_index: np.ndarray  # (games,) index into groups
    groups: list[str]


def design(games: Sequence[Game], anchor: str, players: Sequence[str] | None = None) -> Design:
    names = list(players) if players is not None else sorted({g.first for g in games} | {g.second for g in games})
    if anchor not in names:
        raise ValueError(f"the anchor {anchor!r} plays no game")
    names = [anchor] + [p for p in names if p != anchor]
    col = {p: i - 1 for i, p in enumerate(names)}  # the anchor has no column
    groups = sorted({g.group for g in games})
    gi = {g: i for i, g in enumerate(groups)}
    x = np.zeros((len(games), len(names) - 1))
    for r, g in enumerate(games):
        if g.first == g.second:
            raise ValueError(f"a game of {g.first!r} against itself")
        if col[g.first] >= 0:
            x[r, col[g.first]] += 1.0
        if col[g.second] >= 0:
            x[r, col[g.second]] -= 1.0
    return Design(names, x, np.array([g.y for g in games], dtype=float), np.array([g.weight for g in games], dtype=float),
                  np.array([gi[g.group] for g in games], dtype=int), groups)


def fit_arrays(x: np.ndarray, y: np.ndarray, w: np.ndarray, *, l2: float = 1e-6, iterations: int = 100,
               tol: float = 1e-10) -> np.ndarray:
    """The free players' theta maximising sum w*(y log p + (1-y) log(1-p)) - l2/2 |theta|^2."""
    theta = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = sigmoid(x @ theta)
        grad = x.T @ (w * (y - p)) - l2 * theta
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + l2 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        theta = theta + step
        if np.max(np.abs(step), initial=0.0) < tol:
            break
    return theta


def fit(games: Sequence[Game], anchor: str, *, l2: float = 1e-6) -> dict[str, float]:
    """theta of every player, the anchor's 0."""
    d = design(games, anchor)
    theta = fit_arrays(d.x, d.y, d.w, l2=l2)
    return {anchor: 0.0, **{p: float(t) for p, t in zip(d.players[1:], theta, strict=True)}}


@dataclass(frozen=True)
class Tables:
    """The games summed per question and pairing: everything the fit reads."""

    x: np.ndarray  # (pairings, free players): +1 for first, -1 for second
    wins: np.ndarray  # (groups, pairings): sum of weight * y
    weight: np.ndarray  # (groups, pairings): sum of weight


def tables(d: Design) -> Tables:
    pairings, index = np.unique(d.x, axis=0, return_inverse=True)
    shape = (len(d.groups), len(pairings))
    wins, weight = np.zeros(shape), np.zeros(shape)
    np.add.at(wins, (d.group_index, index.ravel()), d.w * d.y)
    np.add.at(weight, (d.group_index, index.ravel()), d.w)
    return Tables(pairings, wins, weight)


def fit_counts(t: Tables, counts: np.ndarray, *, l2: float = 1e-6, start: np.ndarray | None = None,
               iterations: int = 100, tol: float = 1e-10) -> np.ndarray:
    """(rounds, free players): the fit with each question weighted by its count, one row of `counts`
    (rounds, groups) per fit; Newton's method on all rows at once."""
    counts = np.atleast_2d(np.asarray(counts, dtype=float))
    s, n = counts @ t.wins, counts @ t.weight  # (rounds, pairings)
    k = t.x.shape[1]
    theta = np.zeros((len(counts), k)) if start is None else np.tile(start, (len(counts), 1))
    ridge = l2 * np.eye(k)
    for _ in range(iterations):
        p = sigmoid(theta @ t.x.T)
        grad = (s - n * p) @ t.x - l2 * theta
        hess = np.einsum("rp,pk,pl->rkl", n * p * (1 - p), t.x, t.x) + ridge
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        theta = theta + step
        if np.max(np.abs(step), initial=0.0) < tol:
            break
    return theta


@dataclass(frozen=True)
class Replicates:
    """The fit, its bootstrap refits and its jackknife, over the free players (the anchor has none)."""

    players: list[str]  # the anchor first
    point: np.ndarray  # (players - 1,)
    rounds: np.ndarray  # (rounds, players - 1)
    jackknife: np.ndarray  # (groups, players - 1)
    groups: int


def replicates(games: Sequence[Game], anchor: str, *, rounds: int = 200, seed: int = 0,
               l2: float = 1e-6) -> Replicates:
    """The fit, `rounds` refits on questions drawn with replacement, and the leave-one-question-out fits."""
    if rounds < 1:
        raise ValueError("the bootstrap needs at least one round")
    d = design(games, anchor)
    t = tables(d)
    point = fit_counts(t, np.ones(len(d.groups)), l2=l2)[0]
    boot = fit_counts(t, resample_counts(len(d.groups), rounds, seed), l2=l2, start=point)
    jack = fit_counts(t, jackknife_counts(len(d.groups)), l2=l2, start=point)
    return Replicates(d.players, point, boot, jack, len(d.groups))


@dataclass(frozen=True)
class Interval:
    theta: float
    low: float
    high: float


def intervals(r: Replicates, *, confidence: float = CONFIDENCE, method: Method = DEFAULT_METHOD) -> dict[str, Interval]:
    lo, hi = endpoints(r.point, r.rounds, r.jackknife, confidence=confidence, n_groups=r.groups, method=method)
    out = {r.players[0]: Interval(0.0, 0.0, 0.0)}
    for k, p in enumerate(r.players[1:]):
        out[p] = Interval(float(r.point[k]), float(lo[k]), float(hi[k]))
    return out


def bootstrap(games: Sequence[Game], anchor: str, *, rounds: int = 200, seed: int = 0, l2: float = 1e-6,
              confidence: float = CONFIDENCE, method: Method = DEFAULT_METHOD) -> dict[str, Interval]:
    """The fit and its interval from `rounds` refits on questions drawn with replacement."""
    return intervals(replicates(games, anchor, rounds=rounds, seed=seed, l2=l2), confidence=confidence, method=method)


def win_probability(theta: Mapping[str, float], a: str, b: str) -> float:
    """P(a beats b) under the fit."""
    return float(sigmoid(theta[a] - theta[b]))
