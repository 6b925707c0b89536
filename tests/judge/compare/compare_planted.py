"""A judge of planted behaviour for the compare tests (this module holds no tests).

Models have planted Bradley-Terry strengths `theta` against the baseline (theta 0). The judge says
tie with probability `tie`, and "much" with probability `strong` whichever side wins; the win
probability among the other verdicts is chosen so that the weighted share of wins (strong verdicts
weighing 3, ties half a win) is exactly sigmoid(theta): then theta is the very quantity the weighted
Bradley-Terry fit estimates, and an interval can be checked for covering it. On top of that the
judge favours position A by `position` (added to the win probability of the answer shown first,
taken away in the other order) and longer answers by `length` * tanh(delta / LENGTH_SCALE).
"""

from __future__ import annotations

import math
import random

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


def arena_label(pref: int, *, model_first: bool) -> str:
    """The positional verdict label (A>>B ... B>>A) a judge writes for a model-side preference."""
    if pref == 0:
        return "A=B"
    model, other = ("A", "B") if model_first else ("B", "A")
    winner, loser = (model, other) if pref > 0 else (other, model)
    return f"{winner}{'>>' if abs(pref) == 2 else '>'}{loser}"
