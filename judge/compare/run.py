"""A comparison run: its settings, and grading every model against the baseline, both orders, through
the engine or the Batch API; then the analysis and the reports (`run_compare`).

The items are judge.grading's pair items (grading/plan.py) turned into `StrengthItem`s; sending,
retries of unreadable replies, resume and the writing of each judgment are judge.grading's own
(`Grading`, the online and the batch loops of grading/rounds.py). Everything lives in the comparison's folder: `ledger.sqlite` (every judge request,
so a rerun pays nothing twice and `--max-cost` counts this comparison's spend) and `judgments.jsonl`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, Field

from factory.batch import BatchSettings
from factory.engine import Engine, EngineSettings, Ledger, choose_structured, wants_structured
from judge.compare.analysis import DEFAULT_ROUNDS, MIN_ROUNDS, AnalysisOptions, analyse
from judge.compare.inputs import CompareInputs, load_compare_inputs
from judge.compare.language import HANGUL_THRESHOLD
from judge.compare.page import write_reports
from judge.compare.strength import StrengthItem
from judge.grading.inputs import left_to_grade
from judge.grading.rounds import GradeCounts, Grading, check_prompts, grade_batch, grade_online
from judge.grading.settings import GradeError
from judge.grading.plan import plan_items
from schemas import CompareFolder, JsonlError, JsonlWriter, Judgment, read_jsonl

SECTION = "compare"


class CompareSettings(BaseModel):
    """The comparison as resolved; saved as [compare] of OUT/config.toml."""

    model_config = ConfigDict(extra="forbid")

    runs: list[Path] = Field(min_length=1)
    baseline: str = Field(min_length=1)
    judge_model: str = Field(min_length=1)
    questions: list[Path] = Field(default_factory=list)
    structured: Literal["auto", "yes", "no"] = "auto"
    retries: int = Field(default=2, ge=0, le=10)
    lang: Literal["en", "ko"] | None = None
    pair_reference: bool = True
    max_tokens: int = Field(default=512, ge=16, le=32768)
    batch: bool = False
    wrong_language: Literal["flag", "loss"] = "flag"
    hangul_threshold: float = Field(default=HANGUL_THRESHOLD, gt=0, lt=1)
    bootstrap_rounds: int = Field(default=DEFAULT_ROUNDS, ge=MIN_ROUNDS, le=100_000)
    seed: int = 0
    gpu_hour_usd: float | None = Field(default=None, ge=0)
    gpus: int = Field(default=1, ge=1)
    grade: bool = True


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
                      structured: str, judge_model: str, retries: int, max_tokens: int,
                      batch: BatchSettings | None = None, http_client: httpx.AsyncClient | None = None,
                      api_key: str | None = None, err: TextIO | None = None) -> GradeCounts:
    """Grade the items without a scored judgment in `out`; the counts of this run. `structured`: the
    setting (auto probes the server once, as judge.grading does)."""
    err = err if err is not None else sys.stderr
    todo = left_to_grade(items, read_judgments(out))
    check_prompts(todo.items, todo.first_attempt)
    if not todo.items:
        return GradeCounts(planned=len(items), already_scored=todo.already_scored)
    out.mkdir(parents=True, exist_ok=True)
    with Ledger.for_run(out) as ledger:
        # Built before anything is sent: the engine refuses a missing key or a budget without a price.
        engine = None if batch is not None else Engine(engine_settings, ledger, api_key=api_key, http_client=http_client)
        with JsonlWriter(CompareFolder(out).judgments) as writer:
            grading = Grading(todo, writer, structured=wants_structured(structured, judge_model), retries=retries,
                              max_tokens=max_tokens)
            if engine is not None:
                anyio.run(_grade_online, grading, engine, structured, judge_model, CompareFolder(out), err)
            else:
                anyio.run(grade_batch, grading, ledger, engine_settings, batch, http_client, api_key, err)
    counts = grading.finish()
    counts.planned = len(items)
    counts.already_scored = todo.already_scored
    return counts


async def _grade_online(grading: Grading, engine: Engine, setting: str, judge_model: str, folder: CompareFolder,
                        err: TextIO) -> None:
    grading.structured, note = await choose_structured(engine, setting, judge_model, folder)
    if note:
        print(note, file=err)
    await grade_online(grading, engine)


def run_compare(out: Path, settings: CompareSettings, engine_settings: EngineSettings,
                batch: BatchSettings | None = None, *, http_client: httpx.AsyncClient | None = None,
                api_key: str | None = None) -> tuple[GradeCounts, dict[str, Any], list[str]]:
    """Grade what is missing, then write the reports; (counts, compare.json's content, skipped)."""
    inputs = load_compare_inputs(settings.runs, settings.baseline, settings.questions)
    plan = plan_comparisons(inputs, judge_model=settings.judge_model, pair_reference=settings.pair_reference,
                            lang=settings.lang)
    if not plan.items:
        raise GradeError(f"nothing to compare: {plan.skipped[0] if plan.skipped else 'no questions'}")
    options = AnalysisOptions(settings.wrong_language, settings.hangul_threshold, settings.bootstrap_rounds,
                              settings.seed, settings.gpu_hour_usd, settings.gpus)
    counts = GradeCounts(planned=len(plan.items))
    CompareFolder(out).write_config_section(SECTION, settings)
    if settings.grade:
        counts = grade_comparisons(out, plan.items, engine_settings=engine_settings,
                                   structured=settings.structured, judge_model=settings.judge_model,
                                   retries=settings.retries, max_tokens=settings.max_tokens,
                                   batch=(batch or BatchSettings()) if settings.batch else None,
                                   http_client=http_client, api_key=api_key)
    result = analyse(out, inputs, plan.items, read_judgments(out), judge_model=settings.judge_model, options=options)
    write_reports(out, result)
    return counts, result, plan.skipped
