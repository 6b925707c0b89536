"""From the comparison's judgments to the figures of `compare.json`.

Every scored judgment gives two verdicts (its two orders), each a game of the model against the
baseline for the Bradley-Terry fit (judge.compare.bt). A model's score is its fitted win
probability against the baseline, in percent (the baseline scores 50); "points" are percentage
points of that score. An answer to a Korean question that is not in Korean
(judge.compare.language) is counted in each model's wrong-language rate; with `wrong_language=
"loss"` it also turns that comparison's verdicts into losses for its author (into wins when only the
baseline's answer is in the wrong language; when both are, the judge's verdicts stand).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from factory.engine import Ledger, usd
from judge.compare.bt import CONFIDENCE, STRONG_WEIGHT, Game, bootstrap, fit, game_from_preference, win_probability
from judge.compare.cost import RunCost, keyed_cost, model_cost, run_costs
from judge.compare.inputs import CompareInputs
from judge.compare.language import HANGUL_THRESHOLD, wrong_language
from judge.compare.strength import StrengthItem
from judge.reports.intervals import DEFAULT_METHOD
from judge.compare.winrate import ModelVerdicts, difficulty_win_rates, win_rates
from judge.grading.verdicts import judgment_key
from schemas import Answer, CompareFolder, Judgment

MIN_ROUNDS = 100
# 200 rounds left the BCa interval's far quantiles noisy enough to cover about a point less than 1000
# (bench/results/compare_stats.json, by_method expanded-bca@200); a round is one cheap Newton refit
DEFAULT_ROUNDS = 1000


@dataclass(frozen=True)
class AnalysisOptions:
    wrong_language: Literal["flag", "loss"] = "flag"
    hangul_threshold: float = HANGUL_THRESHOLD
    bootstrap_rounds: int = DEFAULT_ROUNDS
    seed: int = 0
    gpu_hour_usd: float | None = None
    gpus: int = 1


def _pct(p: float) -> float:
    return 100.0 * p


def _score(theta: float) -> float:
    return _pct(1 / (1 + math.exp(-theta)))


def _compare_judging_usd(out: Path, judgments: Sequence[Judgment]) -> dict[str, float | None]:
    """What grading each model cost, from the comparison's ledger (each request once, reruns included)."""
    keys: dict[str, set[str]] = defaultdict(set)
    for j in judgments:
        keys[j.model].update(j.request_keys)
    ledger_path = CompareFolder(out).ledger
    if not ledger_path.exists():
        return {m: 0.0 for m in keys}
    with Ledger(ledger_path) as ledger:
        return {model: keyed_cost(ledger, ks) for model, ks in keys.items()}


def analyse(out: Path, inputs: CompareInputs, items: Sequence[StrengthItem], judgments: Sequence[Judgment],
            *, judge_model: str, options: AnalysisOptions) -> dict[str, Any]:
    if options.bootstrap_rounds < MIN_ROUNDS:
        raise ValueError(f"--bootstrap-rounds {options.bootstrap_rounds} is too few: use at least {MIN_ROUNDS}")
    base = inputs.baseline
    planned = {i.key: i for i in items}
    latest: dict[tuple[object, ...], Judgment] = {}
    for j in judgments:
        if judgment_key(j) in planned:
            latest[judgment_key(j)] = j
    answer = {(a.model, a.question_id): a for a in inputs.answers}

    def text(model: str, qid: str, turn: int) -> str:
        a: Answer = answer[(model, qid)]
        return a.turns[turn - 1]

    games: list[Game] = []
    per_model: dict[str, dict[str, Any]] = {m.name: defaultdict(list) for m in inputs.models}
    counts = {m.name: {"planned": 0, "scored": 0, "unscored": 0, "missing": 0} for m in inputs.models}
    for key, item in planned.items():
        m = item.answer.model
        counts[m]["planned"] += 1
        j = latest.get(key)
        if j is None:
            counts[m]["missing"] += 1
            continue
        if j.status != "scored":
            counts[m]["unscored"] += 1
            continue
        prefs = list((j.model_extra or {}).get("preferences") or [])
        if len(prefs) != 2:
            counts[m]["unscored"] += 1  # a judgment without strengths (not written by compare)
            continue
        counts[m]["scored"] += 1
        q, turn = item.question, item.turn
        own, theirs = text(m, q.question_id, turn), text(base, q.question_id, turn)
        if options.wrong_language == "loss":
            own_wrong = wrong_language(own, q.lang, options.hangul_threshold)
            base_wrong = wrong_language(theirs, q.lang, options.hangul_threshold)
            if own_wrong != base_wrong:
                prefs = [-1, -1] if own_wrong else [1, 1]
        for p in prefs:
            games.append(game_from_preference(q.question_id, m, base, p))
            per_model[m]["prefs"].append(p)
            per_model[m]["delta"].append(len(own) - len(theirs))
            per_model[m]["category"].append(q.category)
            per_model[m]["question"].append(q.question_id)

    fitted = [m for m in per_model if per_model[m]["prefs"]]
    outcomes = {m: [1.0 if p > 0 else 0.0 if p < 0 else 0.5 for p in per_model[m]["prefs"]] for m in fitted}
    with_difficulty = difficulty_win_rates({m: ModelVerdicts(outcomes[m], per_model[m]["delta"], per_model[m]["question"])
                                            for m in fitted})
    intervals = bootstrap(games, base, rounds=options.bootstrap_rounds, seed=options.seed) if games else {}
    theta = {p: iv.theta for p, iv in intervals.items()}

    def lang_stats(model: str) -> tuple[float | None, int]:
        wrong = total = 0
        for q in inputs.questions:
            a = answer.get((model, q.question_id))
            if q.lang != "ko" or a is None:
                continue
            for t in a.turns[:len(q.turns)]:
                total += 1
                wrong += wrong_language(t, "ko", options.hangul_threshold)
        return (wrong / total if total else None), total

    def mean_length(model: str) -> float | None:
        ids = {q.question_id: len(q.turns) for q in inputs.questions}
        lengths = [len(t) for (mm, qid), a in answer.items() if mm == model and qid in ids for t in a.turns[:ids[qid]]]
        return sum(lengths) / len(lengths) if lengths else None

    spend: dict[Path, RunCost] = {}
    judging = _compare_judging_usd(out, [j for j in judgments if judgment_key(j) in planned])
    rows: list[dict[str, Any]] = []
    for src in inputs.models:
        m = src.name
        prefs = per_model[m]["prefs"]
        if src.run not in spend:
            spend[src.run] = run_costs(src.run, base)
        cost = model_cost(spend[src.run], src.label, judging.get(m, 0.0), gpu_hour_usd=options.gpu_hour_usd,
                          gpus=options.gpus)
        rate, n_ko = lang_stats(m)
        row: dict[str, Any] = {"name": m, "run": str(src.run), "label": src.label, "is_baseline": False,
                               "verdicts": len(prefs), **counts[m], "mean_length": mean_length(m),
                               "wrong_language_rate": rate, "korean_answers": n_ko, "cost": asdict(cost)}
        if m in intervals:
            iv = intervals[m]
            w = win_rates(outcomes[m], per_model[m]["delta"])
            lc = with_difficulty.get(m)
            score = _score(iv.theta)
            row |= {"theta": iv.theta, "theta_low": iv.low, "theta_high": iv.high, "score": score,
                    "score_low": _score(iv.low), "score_high": _score(iv.high),
                    "win": sum(p > 0 for p in prefs) / len(prefs), "tie": sum(p == 0 for p in prefs) / len(prefs),
                    "loss": sum(p < 0 for p in prefs) / len(prefs), "much_better": sum(p == 2 for p in prefs) / len(prefs),
                    "much_worse": sum(p == -2 for p in prefs) / len(prefs),
                    "raw_win_rate": _pct(w.raw),
                    # with the difficulty term where it can be fitted, else length only (lc_terms says which)
                    "lc_win_rate": _pct(lc.length_controlled) if lc else None if w.length_controlled is None
                    else _pct(w.length_controlled),
                    "lc_terms": "length+difficulty" if lc else None if w.length_controlled is None else "length",
                    "length_slope": lc.length_slope if lc else w.length_slope,
                    "lc_win_rate_length_only": None if w.length_controlled is None else _pct(w.length_controlled),
                    "points": score - 50.0,
                    "usd_per_point": cost.total_usd / (score - 50.0) if cost.total_usd is not None and score > 50.0 else None}
        rows.append(row)
    base_rate, base_ko = lang_stats(base)
    rows.append({"name": base, "run": str(inputs.baseline_run), "label": base, "is_baseline": True, "theta": 0.0,
                 "theta_low": 0.0, "theta_high": 0.0, "score": 50.0, "score_low": 50.0, "score_high": 50.0,
                 "points": 0.0, "mean_length": mean_length(base), "wrong_language_rate": base_rate,
                 "korean_answers": base_ko, "cost": None, "usd_per_point": None})
    rows.sort(key=lambda r: (r.get("score") is None, -(r.get("score") or 0.0), r["name"]))
    for rank, r in enumerate(rows, start=1):
        r["rank"] = rank

    players = [r["name"] for r in rows if r["name"] in theta]
    matrix = [[None if a == b else _pct(win_probability(theta, a, b)) for b in players] for a in players]
    categories = sorted({c for m in fitted for c in per_model[m]["category"]})
    by_category: dict[str, dict[str, float | None]] = {m: {} for m in fitted}
    for c in categories:
        cat_games = [g for g in games if g.group in {i.question.question_id for i in items if i.question.category == c}]
        cat_theta = fit(cat_games, base) if cat_games else {}
        for m in fitted:
            by_category[m][c] = _score(cat_theta[m]) if m in cat_theta else None
    return {
        "version": 1,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "judge_model": judge_model,
        "baseline": base,
        "baseline_run": str(inputs.baseline_run),
        "question_files": [str(f) for f in inputs.question_files],
        "questions": len(inputs.questions),
        "settings": {"wrong_language": options.wrong_language, "hangul_threshold": options.hangul_threshold,
                     "bootstrap_rounds": options.bootstrap_rounds, "interval_method": DEFAULT_METHOD,
                     "seed": options.seed, "confidence": CONFIDENCE,
                     "strong_weight": STRONG_WEIGHT, "gpu_hour_usd": options.gpu_hour_usd, "gpus": options.gpus},
        "grading": {k: sum(c[k] for c in counts.values()) for k in ("planned", "scored", "unscored", "missing")},
        "models": rows,
        "pairwise": {"players": players, "win_probability": matrix},
        "categories": {"names": categories, "scores": by_category},
        "notes": list(inputs.notes) + [f"{m}: no scored comparison yet, so no score" for m in per_model if m not in theta]
        + [f"{r['name']}: no length-controlled win rate: its answers are (nearly) always longer or always shorter "
           "than the baseline's, so length and quality cannot be told apart" for r in rows
           if not r["is_baseline"] and r.get("score") is not None and r.get("lc_win_rate") is None]
        + [f"{run}: {usd(c.unclaimed_answers_usd)} of endpoint answers in its ledger belong to no label of its answers, "
           "so no model is charged them" for run, c in spend.items() if c.unclaimed_answers_usd != 0.0]
        + [f"{r['name']}: the length-controlled win rate has no difficulty term: the answers' length differences "
           "barely vary within a question, so a per-question term would leave nothing to fit the length slope on"
           for r in rows if r.get("lc_terms") == "length"],
    }
