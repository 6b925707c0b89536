"""A judge of planted behaviour, whose true Bradley-Terry strengths are known: for the tests of the
statistics and for the example comparison (scripts/compare_example.py).

Models have planted Bradley-Terry strengths `theta` against the baseline (theta 0). The judge says
tie with probability `tie`, and "much" with probability `strong` whichever side wins; the win
probability among the other verdicts is chosen so that the weighted share of wins (strong verdicts
weighing 3, ties half a win) is exactly sigmoid(theta): then theta is the very quantity the weighted
Bradley-Terry fit estimates, and an interval can be checked for covering it. On top of that the
judge favours position A by `position` (added to the win probability of the answer shown first,
taken away in the other order) and longer answers by `length` * tanh(delta / LENGTH_SCALE).

Questions differ: `planted_games` can give each question a strength shift shared by every model
(`question_sd`) and one of each model's own (`model_sd`), the same for both turns and both orders of
that question. Then the fit no longer converges to the planted theta (averaging a win probability
over easy and hard questions pulls it toward 50%): `strength_limit` computes what it converges to,
exactly (a one-dimensional integral over the question shift), and that is the truth an interval
is checked against. `difficulty_verdicts` plants a per-question difficulty that lengths follow, for
the length-controlled win rate, whose truth at equal length is `equal_length_win_rate`.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from judge.compare.bt import Game, game_from_preference

LENGTH_SCALE = 200.0


def win_probability(theta: float, *, tie: float, strong: float) -> float:
    s = 1 / (1 + math.exp(-theta))
    weight = (1 - tie) * (1 + 2 * strong) + tie  # expected weight of a verdict
    return (s * weight - tie / 2) / ((1 - tie) * (1 + 2 * strong))


def verdict(rng: random.Random, theta: float, *, model_first: bool, delta: float = 0.0, tie: float = 0.2,
            strong: float = 0.3, position: float = 0.15, length: float = 0.0) -> int:
    """One order's verdict from the model's side: 2 much better .. -2 much worse."""
    p = win_probability(theta, tie=tie, strong=strong)
    p += position if model_first else -position
    p += length * math.tanh(delta / LENGTH_SCALE)
    p = min(1.0, max(0.0, p))
    if rng.random() < tie:
        return 0
    sign = 1 if rng.random() < p else -1
    return sign * (2 if rng.random() < strong else 1)


def planted_games(thetas: Mapping[str, float], questions: int, seed: int, *, baseline: str = "base",
                  turns: int = 2, position: float = 0.15, question_sd: float = 0.0, model_sd: float = 0.0
                  ) -> list[Game]:
    """Both orders of every turn of `questions` questions, each model against the baseline, as games.
    Question q shifts every model's theta by a ~ N(0, question_sd^2) and each model's by its own
    b ~ N(0, model_sd^2), in every turn and order of q (none drawn where the sd is 0)."""
    rng = random.Random(seed)
    games: list[Game] = []
    for q in range(questions):
        shared = rng.gauss(0, question_sd) if question_sd else 0.0
        for model, theta in thetas.items():
            own = theta + shared + (rng.gauss(0, model_sd) if model_sd else 0.0)
            for _turn in range(turns):
                for model_first in (True, False):
                    pref = verdict(rng, own, model_first=model_first, position=position)
                    games.append(game_from_preference(f"q{q}", model, baseline, pref))
    return games


def _normal_nodes(sd: float, points: int = 8001) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of E[f(u)], u ~ N(0, sd^2): the trapezoid rule over +-12 sd (the clipped
    win probabilities have kinks, so a fine even grid, not Gauss-Hermite)."""
    if sd == 0:
        return np.zeros(1), np.ones(1)
    x = np.linspace(-12.0, 12.0, points)
    w = np.exp(-x**2 / 2)
    w[[0, -1]] /= 2
    return sd * x, w / w.sum()


def _mean_win(theta: np.ndarray, *, tie: float, strong: float, position: float) -> np.ndarray:
    """The win probability among non-tie verdicts, averaged over the two orders (clipped as drawn)."""
    s = 1 / (1 + np.exp(-theta))
    weight = (1 - tie) * (1 + 2 * strong) + tie
    p = (s * weight - tie / 2) / ((1 - tie) * (1 + 2 * strong))
    return (np.clip(p + position, 0, 1) + np.clip(p - position, 0, 1)) / 2


def strength_limit(theta: float, *, sd: float, tie: float = 0.2, strong: float = 0.3, position: float = 0.15) -> float:
    """The strength against the baseline that the Bradley-Terry fit converges to (many questions) for
    a model whose theta on a question is `theta` + u, u ~ N(0, sd^2), under this judge.

    The fit's score equation sets sigmoid(strength) to E[weight * y] / E[weight]; a verdict's expected
    weight does not depend on who wins, so that is the expected weighted share of wins over u."""
    u, w = _normal_nodes(sd)
    win = _mean_win(theta + u, tie=tie, strong=strong, position=position)
    weight = (1 - tie) * (1 + 2 * strong) + tie
    share = float(w @ ((1 - tie) * (1 + 2 * strong) * win + tie / 2)) / weight
    return math.log(share / (1 - share))


def equal_length_win_rate(theta: float, *, sensitivity: float, tie: float = 0.2, strong: float = 0.3,
                          position: float = 0.15) -> float:
    """The win rate (ties half, unweighted) of a model whose theta on a question of difficulty
    d ~ N(0, 1) is theta - sensitivity * d, when its answers are as long as the baseline's: the
    truth a length-controlled win rate estimates."""
    u, w = _normal_nodes(abs(sensitivity))
    win = _mean_win(theta + u, tie=tie, strong=strong, position=position)
    return float(w @ ((1 - tie) * win + tie / 2))


def difficulty_verdicts(rng: random.Random, models: Mapping[str, tuple[float, float]], questions: int, *,
                        sensitivity: float, length_follows: float, length_bias: float = 0.3, turns: int = 2
                        ) -> dict[str, tuple[list[float], list[float], list[str]]]:
    """Outcomes (1/0.5/0), length differences and question ids per model, both orders of every turn.

    `models`: name -> (theta at equal length on a question of average difficulty, length ratio to the
    baseline). Question q has a difficulty d ~ N(0, 1): every model's theta there is theta -
    `sensitivity` * d, every answer is exp(0.25 d) as long (harder questions, longer answers), and a
    model's answers are a further exp(`length_follows` * d) as long as the baseline's (a model that
    rambles where it is out of its depth). The judge adds `length_bias` * tanh(delta / LENGTH_SCALE)."""
    out: dict[str, tuple[list[float], list[float], list[str]]] = {m: ([], [], []) for m in models}
    for q in range(questions):
        d = rng.gauss(0, 1)
        for model, (theta, ratio) in models.items():
            outcomes, deltas, ids = out[model]
            for _turn in range(turns):
                base_len = rng.uniform(200, 800) * math.exp(0.25 * d)
                own = max(20.0, base_len * ratio * math.exp(length_follows * d) + rng.gauss(0, 150))
                for model_first in (True, False):
                    pref = verdict(rng, theta - sensitivity * d, model_first=model_first, delta=own - base_len,
                                   length=length_bias)
                    outcomes.append(1.0 if pref > 0 else 0.0 if pref < 0 else 0.5)
                    deltas.append(own - base_len)
                    ids.append(f"q{q}")
    return out


def length_outcomes(rng: random.Random, ratio: float, questions: int = 300, *, length: float = 0.3
                    ) -> tuple[list[float], list[float]]:
    """Outcomes (1/0.5/0) and length differences of a model of the baseline's quality whose answers are
    `ratio` times as long (with noise), judged with a length bias `length`."""
    outcomes, deltas = [], []
    for _ in range(questions):
        base_len = rng.uniform(200, 800)
        own = max(20.0, base_len * ratio + rng.gauss(0, 150))
        for model_first in (True, False):
            pref = verdict(rng, 0.0, model_first=model_first, delta=own - base_len, length=length)
            outcomes.append(1.0 if pref > 0 else 0.0 if pref < 0 else 0.5)
            deltas.append(own - base_len)
    return outcomes, deltas


def arena_label(pref: int, *, model_first: bool) -> str:
    """The positional verdict label (A>>B ... B>>A) a judge writes for a model-side preference."""
    if pref == 0:
        return "A=B"
    model, other = ("A", "B") if model_first else ("B", "A")
    winner, loser = (model, other) if pref > 0 else (other, model)
    return f"{winner}{'>>' if abs(pref) == 2 else '>'}{loser}"


_GRADED = re.compile(r"<(answer_[ab]|assistant_2)-[0-9a-f]{16}>\n(.*?)\n</\1-[0-9a-f]{16}>", re.DOTALL)
_MARKER = re.compile(r"\[#(\w+)\]")


def marker_of(answer: str) -> str:
    """The planted marker `[#NAME]` an answer starts with."""
    m = _MARKER.match(answer)
    if m is None:
        raise ValueError(f"an answer without a [#NAME] marker: {answer[:60]!r}")
    return m.group(1)


class PlantedJudge:
    """Replies to a strength prompt (judge.compare.strength) as the planted judge would.

    Each answer starts with a marker `[#NAME]`; `strengths[NAME]` is its model's theta against the
    baseline's marker `baseline`. The two graded answers are read from their nonce-fenced blocks
    (turn 2: the second assistant turn of each conversation); the verdict is drawn with a random
    generator seeded by the prompt, so the same prompt always gets the same reply.
    """

    def __init__(self, strengths: Mapping[str, float], *, baseline: str = "0", position: float = 0.15,
                 length: float = 0.05, tie: float = 0.2, strong: float = 0.3) -> None:
        self.strengths, self.baseline = dict(strengths), baseline
        self.position, self.length, self.tie, self.strong = position, length, tie, strong

    def reply(self, body: dict[str, Any]) -> str:
        content = body["messages"][1]["content"]
        found = _GRADED.findall(content)
        a, b = found[0][1], found[-1][1]
        model_first = marker_of(a) != self.baseline
        own, base = (a, b) if model_first else (b, a)
        rng = random.Random(hashlib.sha256(content.encode()).hexdigest())
        pref = verdict(rng, self.strengths[marker_of(own)], model_first=model_first, delta=len(own) - len(base),
                       tie=self.tie, strong=self.strong, position=self.position, length=self.length)
        return json.dumps({"rationale": "planted", "verdict": arena_label(pref, model_first=model_first)})
