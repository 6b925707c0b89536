"""What a curation asks: one item per kept example, and what is left after an earlier run.

Each `CurationItem` gives the judge's grading rounds (judge.grading.rounds) what a question turn
gives them: the prompt of an attempt, the reading of a reply, and the final record, here a
`CurationScore` line of `RUN/curation/NAME/scores.jsonl`.

Resume: a scored example is final (a skipped one while --prefilter is on); an unscored one is asked again, starting after the
attempt numbers it used (a new nonce, so the ledger does not hand back the unreadable reply); an
example whose text changed since its line was written (its digest differs) is graded again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from factory.exporting import CurationScore
from judge.curation.rubric import RUBRIC_VERSION, Grade, curation_prompt, example_digest, parse_grade
from judge.curation.signals import duplicate_counts, prefilter_reason, signals_of
from judge.errors import CurateError
from judge.grading.inputs import Todo
from judge.grading.parse import Unparsed
from judge.grading.prompts import GradingPrompt
from schemas import Example, JsonlError, Rejected, RunFolder, iter_jsonl


@dataclass(frozen=True)
class CurationItem:
    example: Example
    judge_model: str
    curation: str
    lang: str | None
    signals: dict[str, Any] = field(hash=False, compare=False)

    orders = 1  # one prompt per attempt (a pair of answers has two)

    @property
    def key(self) -> str:
        return self.example.id

    def prompt(self, order: int = 0, attempt: int = 0) -> GradingPrompt:
        return curation_prompt(self.example, lang=self.lang, attempt=attempt)

    def parse(self, reply: str | None) -> Grade | Unparsed:
        return parse_grade(reply)

    def final(self, outcomes: Sequence[Grade | Unparsed], *, request_keys: Sequence[str], cost_usd: float | None,
              attempts: int) -> CurationScore:
        (outcome,) = outcomes
        common = self.common() | {"request_keys": list(request_keys), "cost_usd": cost_usd, "attempts": attempts}
        if isinstance(outcome, Unparsed):
            return CurationScore(status="unscored", error=outcome.reason, reply=outcome.text, **common)
        return CurationScore(status="scored", overall=outcome.marks.overall, criteria=dict(outcome.marks.criteria),
                             rationale=outcome.rationale, source=outcome.source, **common)

    def skipped(self, reason: str) -> CurationScore:
        """The line of an example the prefilter kept from the LLM: no request, no cost."""
        return CurationScore(status="skipped", error=f"prefilter: {reason}", cost_usd=0.0, request_keys=[],
                             attempts=0, **self.common())

    def common(self) -> dict[str, Any]:
        return {"example_id": self.example.id, "curation": self.curation, "judge_model": self.judge_model,
                "rubric_version": RUBRIC_VERSION, "lang": self.example.lang, "example_sha": example_digest(self.example),
                "signals": self.signals}


@dataclass
class CurationTodo:
    examples: list[Example]
    todo: Todo  # the items to ask the LLM, with the attempt number each starts at
    skip: list[tuple[CurationItem, str]]  # the prefilter's: (item, why)
    done: dict[str, CurationScore]  # example id -> its final line from an earlier run


def load_examples(run: RunFolder) -> list[Example]:
    if not run.examples.is_file():
        raise CurateError(f"no kept examples in {run} (no {run.examples}); make them with "
                          f"`just generate --run {run} ...` first")
    try:
        examples = list(iter_jsonl(run.examples, Example))
    except (JsonlError, ValidationError) as e:
        raise CurateError(f"{e}; fix or remove that line of {run.examples}") from None
    if not examples:
        raise CurateError(f"{run.examples} holds no examples yet; generate some first")
    ids = [e.id for e in examples]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise CurateError(f"{run.examples} has examples sharing an id ({', '.join(twice)}): scores are keyed by id")
    return examples


def read_done(path: Path) -> list[CurationScore]:
    if not path.is_file():
        return []
    try:
        return list(iter_jsonl(path, CurationScore))
    except (JsonlError, ValidationError) as e:
        raise CurateError(f"{e}; fix or remove that line of {path} (a rerun grades that example again)") from None


def plan_curation(run: RunFolder, *, judge_model: str, curation: str, lang: str | None,
                  prefilter: bool) -> CurationTodo:
    examples = load_examples(run)
    rejected = iter_jsonl(run.rejected, Rejected) if run.rejected.is_file() else iter([])
    duplicates = duplicate_counts(rejected)
    lines = read_done(run.curation_scores(curation))
    done: dict[str, CurationScore] = {}
    first: dict[str, int] = {}
    for line in lines:  # in file order: the last line of an example wins
        first[line.example_id] = max(first.get(line.example_id, 0), int((line.model_extra or {}).get("attempts") or 0))
        done[line.example_id] = line
    items, skip, final = [], [], {}
    for ex in examples:
        item = CurationItem(ex, judge_model, curation, lang, signals_of(ex, duplicates))
        line = done.get(ex.id)
        same = line is not None and (line.model_extra or {}).get("example_sha") == example_digest(ex)
        if same and line is not None and (line.state == "scored" or (line.state == "skipped" and prefilter)):
            final[ex.id] = line
            continue
        why = prefilter_reason(item.signals, ex) if prefilter else None
        if why is not None:
            skip.append((item, why))
        else:
            items.append(item)
    todo = Todo(items, {i.key: first.get(i.key, 0) for i in items}, len(final))  # type: ignore[arg-type]
    return CurationTodo(examples, todo, skip, final)


__all__ = ["CurationItem", "CurationTodo", "load_examples", "plan_curation", "read_done"]
