"""Grading a run's answers with an LLM judge through the factory engine: the part behind
`python -m judge grade` (judge/commands/grade.py, whose help tells the whole story) and the Python
API's `judge.grade`.

The settings are in settings.py, the inputs and what is left to grade in inputs.py, the rounds of
requests and replies in rounds.py; this module puts them together and says what was
done.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TextIO

import anyio
import httpx

from factory.batch import BatchSettings
from factory.engine import Engine, EngineSettings, Ledger, choose_structured, wants_structured
from judge.grading.inputs import load_inputs, left_to_grade
from judge.grading.rounds import GradeCounts, Grading, check_prompts, grade_batch, grade_online, stop_lines
from judge.grading.settings import SECTION, STAGE, GradeError, JudgeSettings, ResolvedJudge
from judge.grading.plan import plan_items
from schemas import JsonlError, JsonlWriter, Judgment, RunFolder, read_jsonl

@dataclass
class GradeOutcome:
    counts: GradeCounts
    judgments: Path
    skipped: list[str]
    label: str
    structured: bool


def grade_run(run: Path, settings: JudgeSettings, engine_settings: EngineSettings, batch: BatchSettings | None = None,
              *, http_client: httpx.AsyncClient | None = None, api_key: str | None = None,
              err: TextIO | None = None) -> GradeOutcome:
    """Grade what is left in `run`. Every input is checked before the first request is sent.

    `http_client` (tests): the HTTP client the engine or the batch client uses. Raises GradeError
    for inputs to fix, FatalAPIError when the API refuses the key, the model or the requests.
    """
    return anyio.run(partial(grade_run_async, run, settings, engine_settings, batch, http_client=http_client,
                             api_key=api_key, err=err))


async def grade_run_async(run: Path, settings: JudgeSettings, engine_settings: EngineSettings,
                          batch: BatchSettings | None = None, *, http_client: httpx.AsyncClient | None = None,
                          api_key: str | None = None, err: TextIO | None = None) -> GradeOutcome:
    """`grade_run` in a running event loop."""
    err = err if err is not None else sys.stderr
    inputs = load_inputs(run, settings)
    try:
        plan = plan_items(inputs.questions, inputs.answers, mode=settings.mode, model=inputs.label,
                          judge_model=settings.judge_model, baseline=settings.baseline,
                          pair_reference=settings.pair_reference, lang=settings.lang)
    except ValueError as e:
        raise GradeError(str(e)) from None
    if not plan.items:
        raise GradeError(f"nothing to grade in mode {settings.mode}: {_skipped_summary(plan.skipped)}")
    out_path = RunFolder(run).judgments
    try:
        done = read_jsonl(out_path, Judgment)
    except JsonlError as e:
        raise GradeError(f"{e}; fix or move the file, then rerun") from None
    todo = left_to_grade(plan.items, done)
    structured = wants_structured(settings.structured, settings.judge_model)
    resolved = ResolvedJudge(**{**settings.model_dump(), "model": inputs.label, "questions": inputs.question_files,
                                "structured": "yes" if structured else "no"},
                             engine=engine_settings, batch_api=batch if settings.batch else None)
    check_prompts(todo.items, todo.first_attempt)
    if not todo.items:
        RunFolder(run).write_config_section(SECTION, resolved)
        return GradeOutcome(GradeCounts(planned=len(plan.items), already_scored=todo.already_scored), out_path,
                            plan.skipped, inputs.label, structured)

    with Ledger.for_run(run) as ledger:
        # Built before anything is sent: the engine refuses a missing key or a budget without a price.
        engine = None if settings.batch else Engine(engine_settings, ledger, api_key=api_key, http_client=http_client)
        RunFolder(run).write_config_section(SECTION, resolved)  # what was asked, before anything is sent
        if engine is not None:  # json_schema, json_object (llama.cpp) or text: as the server takes it
            structured, note = await choose_structured(engine, settings.structured, settings.judge_model,
                                                       RunFolder(run))
            if note:
                print(note, file=err)
            resolved = resolved.model_copy(update={"structured": "yes" if structured else "no"})
        RunFolder(run).write_config_section(SECTION, resolved)
        with JsonlWriter(out_path) as writer:
            grading = Grading(todo, writer, structured=structured, retries=settings.retries,
                              max_tokens=settings.max_tokens)
            if engine is not None:
                await grade_online(grading, engine)
            else:
                await grade_batch(grading, ledger, engine_settings, batch or BatchSettings(), http_client, api_key, err)
    counts = grading.finish()
    counts.planned = len(plan.items)
    counts.already_scored = todo.already_scored
    return GradeOutcome(counts, out_path, plan.skipped, inputs.label, structured)


# --------------------------------------------------------------------------------------------
# Printing


def _skipped_summary(skipped: Sequence[str]) -> str:
    """'12 question turns: no answer from 'lora' (x10); ...': reasons grouped, most frequent first."""
    reasons = Counter(line.split(": ", 1)[-1] for line in skipped)
    parts = [f"{reason} (x{n})" for reason, n in reasons.most_common(3)]
    more = f"; and {len(reasons) - 3} other reasons" if len(reasons) > 3 else ""
    return f"{len(skipped)} question turns: " + "; ".join(parts) + more if skipped else "no question turns"


def summary_lines(run: Path, outcome: GradeOutcome, settings: JudgeSettings) -> list[str]:
    c = outcome.counts
    who = f"{outcome.label} vs {settings.baseline}" if settings.baseline else outcome.label
    graded = c.scored + c.unscored
    lines = [f"judge {settings.judge_model}, mode {settings.mode}, {who}: {c.planned} items"
             + (f" ({c.already_scored} graded before)" if c.already_scored else "")]
    if outcome.skipped:
        lines.append(f"not gradable: {_skipped_summary(outcome.skipped)}")
    rate = f" ({c.unscored / graded:.1%} of graded: no readable verdict after {settings.retries + 1} tries)" if c.unscored else ""
    lines.append(f"graded now: {graded} ({c.scored} scored, {c.unscored} unscored{rate})")
    lines.extend(stop_lines(c, "items"))
    lines.append(f"judgments: {outcome.judgments}")
    lines.append(f"report: python -m judge report --run {run}")
    return lines


__all__ = [
    "SECTION",
    "STAGE",
    "GradeError",
    "GradeOutcome",
    "JudgeSettings",
    "ResolvedJudge",
    "grade_run",
    "grade_run_async",
    "summary_lines",
]
