"""What a grading run has to ask, independent of how it is sent.

`plan_items` turns questions and answers into `GradingItem`s (one per question, turn and mode);
each item gives the prompts of an attempt, parses replies, and builds the final `Judgment`.
`pending` drops the items a previous run already scored (resume). `grade_sync` is the whole loop
for a synchronous `ask(prompt) -> reply` function (tests, a local judge); the engine-backed run does
the same steps with batches of requests:

    for attempt in range(retries + 1):
        send item.prompt(order, attempt) for every (item, order) still without a parsed reply
        outcome = item.parse(reply)        # Score | Verdict | Unparsed
    judgment = item.judgment(outcomes, request_keys=..., cost_usd=...)

A retry uses `attempt + 1`, which changes the delimiter nonce and so the request, so the engine's
ledger does not answer it with the cached unparseable reply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from judge.grading.parse import Score, Unparsed, Verdict, parse_score, parse_verdict
from judge.grading.prompts import GradingPrompt, pair_prompt, single_prompt
from judge.grading.verdicts import judgment_key, pair_judgment, single_judgment
from schemas import Answer, Judgment, Question

Mode = Literal["single", "pair", "reference"]
MODES: tuple[Mode, ...] = ("single", "pair", "reference")
# MT-Bench grades these against a reference answer; our evaluation sets carry references for them.
REFERENCE_CATEGORIES = frozenset({"math", "reasoning", "coding"})
Outcome = Score | Verdict | Unparsed


def _has_reference(question: Question, turn: int) -> bool:
    ref = question.reference or []
    return len(ref) >= turn and all(r.strip() for r in ref[:turn])


@dataclass(frozen=True)
class GradingItem:
    """One grading: a question turn, the model's answer, in one mode (a pair also has a baseline)."""

    question: Question
    mode: Mode
    turn: int
    answer: Answer
    judge_model: str
    baseline_answer: Answer | None = None
    reference: bool = False  # reference-guided (always true in mode "reference")
    lang: str | None = None  # judge prompt language; None: the question's

    @property
    def orders(self) -> int:
        """Prompts per attempt: 2 for a pair (both orders), else 1."""
        return 2 if self.mode == "pair" else 1

    @property
    def key(self) -> tuple[object, ...]:
        return (self.question.question_id, self.mode, self.turn, self.answer.model,
                self.baseline_answer.model if self.baseline_answer else None, self.judge_model,
                self.mode == "pair" and self.reference)

    def prompt(self, order: int = 0, attempt: int = 0) -> GradingPrompt:
        """The prompt of `order` (pairs: 0 = model as A, 1 = baseline as A) at `attempt`."""
        if not 0 <= order < self.orders:
            raise ValueError(f"order {order} does not exist for mode {self.mode}")
        kw = dict(turn=self.turn, reference=self.reference, lang=self.lang, attempt=attempt)
        if self.mode != "pair":
            return single_prompt(self.question, self.answer, **kw)
        assert self.baseline_answer is not None
        first, second = (self.answer, self.baseline_answer) if order == 0 else (self.baseline_answer, self.answer)
        return pair_prompt(self.question, first, second, **kw)

    def parse(self, reply: str | None) -> Outcome:
        return parse_verdict(reply) if self.mode == "pair" else parse_score(reply)

    def judgment(self, outcomes: Sequence[Outcome], *, request_keys: Sequence[str] = (),
                 cost_usd: float | None = None) -> Judgment:
        """The record of this item from its final outcome(s), one per order."""
        if len(outcomes) != self.orders:
            raise ValueError(f"mode {self.mode} needs {self.orders} outcome(s), got {len(outcomes)}")
        common = dict(question=self.question, turn=self.turn, judge_model=self.judge_model,
                      reference=self.reference, request_keys=request_keys, cost_usd=cost_usd)
        if self.mode == "pair":
            assert self.baseline_answer is not None
            return pair_judgment(model=self.answer.model, baseline=self.baseline_answer.model,
                                 model_first=outcomes[0], baseline_first=outcomes[1], **common)  # type: ignore[arg-type]
        return single_judgment(model=self.answer.model, outcome=outcomes[0], **common)  # type: ignore[arg-type]

    def final(self, outcomes: Sequence[Outcome], *, request_keys: Sequence[str], cost_usd: float | None,
              attempts: int) -> Judgment:
        """The judgment as the grading rounds write it: with the attempt numbers used (a rerun of an
        unscored item starts after them)."""
        judgment = self.judgment(outcomes, request_keys=request_keys, cost_usd=cost_usd)
        return Judgment.model_validate({**judgment.model_dump(), "attempts": attempts})


@dataclass
class Plan:
    items: list[GradingItem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line per question turn not graded, with why


def plan_items(questions: Iterable[Question], answers: Iterable[Answer], *, mode: Mode, model: str,
               judge_model: str, baseline: str | None = None, pair_reference: bool = True,
               lang: str | None = None) -> Plan:
    """Every gradable (question, turn) of `model` in `mode`.

    single: every turn, no reference. reference: turns whose question has a reference for them.
    pair: every turn against `baseline`, reference-guided where the question is in a reference
    category (math, reasoning, coding) and has the reference, unless `pair_reference` is false.
    A question that a model did not answer (fully) is skipped with the reason.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "pair" and not baseline:
        raise ValueError("pair mode needs a baseline label (the answers to compare against)")
    if mode == "pair" and baseline == model:
        raise ValueError(f"model and baseline are both {model!r}; compare two different labels")
    by_key = {(a.question_id, a.model): a for a in answers}
    plan = Plan()
    for q in questions:
        own = by_key.get((q.question_id, model))
        other = by_key.get((q.question_id, baseline)) if baseline else None
        for turn in range(1, len(q.turns) + 1):
            where = f"{q.question_id} turn {turn}"
            if own is None or len(own.turns) < turn:
                plan.skipped.append(f"{where}: no answer from {model!r}")
                continue
            if mode == "pair" and (other is None or len(other.turns) < turn):
                plan.skipped.append(f"{where}: no answer from baseline {baseline!r}")
                continue
            if mode == "reference" and not _has_reference(q, turn):
                plan.skipped.append(f"{where}: no reference answer (grade it in mode single)")
                continue
            reference = mode == "reference" or (
                mode == "pair" and pair_reference and q.category in REFERENCE_CATEGORIES and _has_reference(q, turn))
            plan.items.append(GradingItem(question=q, mode=mode, turn=turn, answer=own, judge_model=judge_model,
                                          baseline_answer=other if mode == "pair" else None,
                                          reference=reference, lang=lang))
    return plan


def pending(items: Iterable[GradingItem], done: Iterable[Judgment]) -> list[GradingItem]:
    """The items without a scored judgment yet; unscored ones are graded again on a rerun."""
    scored = {judgment_key(j) for j in done if j.status == "scored"}
    return [i for i in items if i.key not in scored]


def grade_sync(items: Iterable[GradingItem], ask: Callable[[GradingPrompt], str | None], *,
               retries: int = 2) -> Iterator[Judgment]:
    """Grade each item with a synchronous judge: up to `retries` more tries per order whose reply
    does not parse, then the judgment (unscored if a reply never parsed)."""
    if retries < 0:
        raise ValueError("retries must be 0 or more")
    for item in items:
        outcomes: list[Outcome] = []
        for order in range(item.orders):
            outcome: Outcome = Unparsed("not asked", "")
            for attempt in range(retries + 1):
                outcome = item.parse(ask(item.prompt(order, attempt)))
                if not isinstance(outcome, Unparsed):
                    break
            outcomes.append(outcome)
        yield item.judgment(outcomes)
