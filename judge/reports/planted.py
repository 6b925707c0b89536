"""Single scores (1-10) of planted behaviour, whose true means are known: for the coverage check of
the report's intervals (bench/compare_stats.py) and its tests.

Model m's latent score on turn t of question q is

    mean_m + turn_shift_t + a_q + b_qm + e,   a_q ~ N(0, question_sd^2), b_qm ~ N(0, model_sd^2), e ~ N(0, noise_sd^2),

with a_q shared by every model and both a_q and b_qm the same in every turn of q (an easy question
is easy in both turns: the correlation that resampling questions, not items, accounts for). The
judge writes it rounded and clipped to 1..10, and leaves a share `unscored` of the items unscored,
at random. `score_truth` is the exact population mean that the report's mean over scored items
estimates (every turn weighs the same, since each question has all of them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist

import numpy as np

LOW, HIGH = 1, 10


def planted_scores(means: Mapping[str, float], questions: int, rng: np.random.Generator, *,
                   turn_shift: Sequence[float] = (0.0, -0.6), question_sd: float = 1.0, model_sd: float = 0.7,
                   noise_sd: float = 1.2, unscored: float = 0.03) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Per model: the scored items' scores and their question ids (`q0`, `q1`, ...)."""
    turns = len(turn_shift)
    shared = rng.normal(0, question_sd, size=(questions, 1))
    ids = np.repeat(np.array([f"q{q}" for q in range(questions)]), turns)
    out: dict[str, tuple[np.ndarray, list[str]]] = {}
    for model, mean in means.items():
        latent = (mean + np.asarray(turn_shift)[None, :] + shared + rng.normal(0, model_sd, size=(questions, 1))
                  + rng.normal(0, noise_sd, size=(questions, turns)))
        scores = np.clip(np.rint(latent), LOW, HIGH).ravel()
        kept = rng.random(scores.shape) >= unscored
        out[model] = (scores[kept], ids[kept].tolist())
    return out


def score_truth(mean: float, *, turn_shift: Sequence[float] = (0.0, -0.6), question_sd: float = 1.0,
                model_sd: float = 0.7, noise_sd: float = 1.2) -> float:
    """E[score] averaged over the turns: with X the latent score, E[clip(round(X))] = 1 + sum over
    k = 1..9 of P(X >= k + 1/2)."""
    sd = math.sqrt(question_sd**2 + model_sd**2 + noise_sd**2)
    per_turn = []
    for shift in turn_shift:
        x = NormalDist(mean + shift, sd)
        per_turn.append(LOW + sum(1 - x.cdf(k + 0.5) for k in range(LOW, HIGH)))
    return sum(per_turn) / len(per_turn)
