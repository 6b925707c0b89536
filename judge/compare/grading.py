"""Grading every model against the baseline, both orders, through the engine or the Batch API.

The items are `judge.plan`'s pair items turned into `StrengthItem`s; sending, retries of unreadable
replies, resume and the writing of each judgment are `judge.grading`'s own (`Grading`, the online and
the batch loops). Everything lives in the comparison's folder: `ledger.sqlite` (every judge request,
so a rerun pays nothing twice and `--max-cost` counts this comparison's spend) and `judgments.jsonl`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import anyio
import httpx

from factory.batch import BatchSettings
from factory.engine import Engine
from factory.engine.ledger import Ledger
from factory.engine.settings import EngineSettings
from judge.compare.inputs import CompareInputs
from judge.compare.strength import StrengthItem
from judge.grade_inputs import left_to_grade
from judge.grade_rounds import GradeCounts, Grading, check_prompts, grade_batch, grade_online
from judge.grade_settings import GradeError
from judge.plan import plan_items
from schemas import CompareFolder, JsonlError, JsonlWriter, Judgment, read_jsonl



@dataclass
class ComparePlan:
    items: list[StrengthItem]
    skipped: list[str]  # "MODEL: QUESTION turn T: why"


def plan_comparisons(inputs: CompareInputs, *, judge_model: str, pair_reference: bool = True,
                     lang: str | None = None) -> ComparePlan:
    items: list[StrengthItem] = []
    skipped: list[str] = []
    for m in inputs.models:
        plan = plan_items(inputs.questions, inputs.answers, mode="pair", model=m.name, judge_model=judge_model,
                          baseline=inputs.baseline, pair_reference=pair_reference, lang=lang)
        items += [StrengthItem.from_item(i) for i in plan.items]
        skipped += [f"{m.name}: {s}" for s in plan.skipped]
    return ComparePlan(items, skipped)


def read_judgments(out: Path) -> list[Judgment]:
    try:
        return read_jsonl(CompareFolder(out).judgments, Judgment)
    except JsonlError as e:
        raise GradeError(f"{e}; fix or move the file, then rerun") from None


def grade_comparisons(out: Path, items: Sequence[StrengthItem], *, engine_settings: EngineSettings,
                      structured: bool, retries: int, max_tokens: int, batch: BatchSettings | None = None,
                      http_client: httpx.AsyncClient | None = None, api_key: str | None = None,
                      err: TextIO | None = None) -> GradeCounts:
    """Grade the items without a scored judgment in `out`; the counts of this run."""
    todo = left_to_grade(items, read_judgments(out))
    check_prompts(todo.items, todo.first_attempt)
    if not todo.items:
        return GradeCounts(planned=len(items), already_scored=todo.already_scored)
    out.mkdir(parents=True, exist_ok=True)
    with Ledger.for_run(out) as ledger:
        # Built before anything is sent: the engine refuses a missing key or a budget without a price.
        engine = None if batch is not None else Engine(engine_settings, ledger, api_key=api_key, http_client=http_client)
        with JsonlWriter(CompareFolder(out).judgments) as writer:
            grading = Grading(todo, writer, structured=structured, retries=retries, max_tokens=max_tokens)
            if engine is not None:
                anyio.run(grade_online, grading, engine)
            else:
                anyio.run(grade_batch, grading, ledger, engine_settings, batch, http_client, api_key,
                          err if err is not None else sys.stderr)
    counts = grading.finish()
    counts.planned = len(items)
    counts.already_scored = todo.already_scored
    return counts
