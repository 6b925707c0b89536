"""Parsed judge replies -> `schemas.Judgment` records.

A pairwise comparison is asked twice, once with the model's answer in position A and once in
position B (`judge.grading.prompts.pair_prompts`). Both verdicts are mapped from positions to models; if the
two orders disagree, the comparison counts as a tie and is marked inconsistent, as in MT-Bench.
A judge that always prefers position A therefore produces only ties and a consistency rate of 0.

Beyond the schema's fields a judgment carries (as extra fields the schema keeps):
`category` and `lang` of the question, so a report needs no question file; for pairs
`order_verdicts` (the raw A/B/tie of each order, model-first order first), `consistent` and
`reference_guided`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from judge.grading.parse import Score, Unparsed, Verdict
from schemas import Judgment, Question

Winner = Literal["model", "baseline", "tie"]


def judgment_key(j: Judgment) -> tuple[object, ...]:
    """What makes two judgments the same grading (a rerun's record replaces an earlier one)."""
    extra = j.model_extra or {}
    return (j.question_id, j.mode, j.turn, j.model, j.baseline, j.judge_model,
            j.mode == "pair" and bool(extra.get("reference_guided")))


def _question_fields(question: Question) -> dict[str, str]:
    return {"category": question.category, "lang": question.lang}


def single_judgment(*, question: Question, model: str, turn: int, judge_model: str,
                    outcome: Score | Unparsed, reference: bool = False,
                    request_keys: Sequence[str] = (), cost_usd: float | None = None) -> Judgment:
    """A single (or reference-guided) grading: scored with the parsed score, or unscored with the reason."""
    common = dict(
        question_id=question.question_id, mode="reference" if reference else "single", turn=turn,
        model=model, judge_model=judge_model, request_keys=list(request_keys), cost_usd=cost_usd,
        **_question_fields(question),
    )
    if isinstance(outcome, Unparsed):
        return Judgment(status="unscored", error=str(outcome), rationale=outcome.text, **common)
    return Judgment(status="scored", score=float(outcome.score), rationale=outcome.rationale, **common)


def order_winner(verdict: str, *, model_position: Literal["A", "B"]) -> Winner:
    """Which model a positional verdict favours, given where the model's answer was shown."""
    if verdict == "tie":
        return "tie"
    return "model" if verdict == model_position else "baseline"


def pair_judgment(*, question: Question, model: str, baseline: str, turn: int, judge_model: str,
                  model_first: Verdict | Unparsed, baseline_first: Verdict | Unparsed,
                  reference: bool = False, request_keys: Sequence[str] = (),
                  cost_usd: float | None = None) -> Judgment:
    """Combine the two orders of one comparison.

    `model_first` is the verdict with the model's answer as A; `baseline_first` with the baseline's
    answer as A. Both parsed and agreeing: that winner. Both parsed and disagreeing: a tie, marked
    `consistent=False`. Either unparsed (after the caller's retries): unscored, never a guess from
    the other order alone.
    """
    common = dict(
        question_id=question.question_id, mode="pair", turn=turn, model=model, baseline=baseline,
        judge_model=judge_model, request_keys=list(request_keys), cost_usd=cost_usd,
        reference_guided=reference, **_question_fields(question),
    )
    failed = [(name, o) for name, o in (("model-first", model_first), ("baseline-first", baseline_first))
              if isinstance(o, Unparsed)]
    if failed:
        error = "; ".join(f"{name} order {o}" for name, o in failed)
        return Judgment(status="unscored", error=error,
                        order_verdicts=[None if isinstance(o, Unparsed) else o.verdict
                                        for o in (model_first, baseline_first)],
                        **common)
    assert isinstance(model_first, Verdict) and isinstance(baseline_first, Verdict)
    first = order_winner(model_first.verdict, model_position="A")
    second = order_winner(baseline_first.verdict, model_position="B")
    consistent = first == second
    return Judgment(
        status="scored",
        winner=first if consistent else "tie",
        consistent=consistent,
        order_verdicts=[model_first.verdict, baseline_first.verdict],
        rationale=f"[model as A] {model_first.rationale}\n[model as B] {baseline_first.rationale}",
        **common,
    )
