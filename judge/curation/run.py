"""Grading a run's kept examples with an LLM and selecting the best: the part behind
`python -m judge curate` (judge/commands/curate.py, whose help tells the whole story) and the
Python API's `judge.curate`.

items.py says what is left to grade; the requests go through the judge's grading rounds
(judge.grading.rounds: the engine online, or the Batch API), as stage "curate" of the run's
ledger; each final grade is appended to `RUN/curation/NAME/scores.jsonl` at once. When every
example has its line, selection.py writes the selection as a run folder of its own.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TextIO

import anyio
import httpx

from factory.batch import BatchSettings
from factory.engine import (
    ChatRequest,
    Engine,
    EngineSettings,
    Ledger,
    choose_structured,
    price_table_for,
    usd,
    wants_structured,
    worst_case,
)
from judge.curation.items import CurationTodo, plan_curation
from judge.curation.selection import Selection, write_selection
from judge.curation.settings import STAGE, CurateSettings, ResolvedCuration
from judge.errors import CurateError, GradeError
from judge.grading.prompts import GradingPrompt
from judge.grading.rounds import GradeCounts, Grading, check_prompts, grade_batch, grade_online, stop_lines
from schemas import JsonlWriter, RunFolder


@dataclass
class CurateOutcome:
    curation: str
    scores: Path
    examples: int
    counts: GradeCounts
    skipped_now: int = 0
    skipped_saved_usd: float | None = 0.0  # the prefilter's: what the skipped prompts would have cost at least
    selection: Selection | None = None
    not_selected_why: str = ""
    structured: bool = False
    dry_run: list[str] = field(default_factory=list)


def curate(run: Path, settings: CurateSettings, engine_settings: EngineSettings, batch: BatchSettings | None = None,
           *, dry_run: bool = False, http_client: httpx.AsyncClient | None = None, api_key: str | None = None,
           err: TextIO | None = None) -> CurateOutcome:
    """Grade what is left of `run`'s kept examples, then select. Every input is checked before the
    first request. Raises CurateError for inputs to fix, FatalAPIError when the API refuses."""
    return anyio.run(partial(curate_async, run, settings, engine_settings, batch, dry_run=dry_run,
                             http_client=http_client, api_key=api_key, err=err))


async def curate_async(run: Path, settings: CurateSettings, engine_settings: EngineSettings,
                       batch: BatchSettings | None = None, *, dry_run: bool = False,
                       http_client: httpx.AsyncClient | None = None, api_key: str | None = None,
                       err: TextIO | None = None) -> CurateOutcome:
    """`curate` in a running event loop."""
    err = err if err is not None else sys.stderr
    folder = RunFolder(run)
    name = settings.curation
    plan = plan_curation(folder, judge_model=settings.judge_model, curation=name, lang=settings.lang,
                         prefilter=settings.prefilter)
    todo = plan.todo
    try:
        check_prompts(todo.items, todo.first_attempt)
    except GradeError as e:
        raise CurateError(str(e)) from None
    structured = wants_structured(settings.structured, settings.judge_model)
    outcome = CurateOutcome(name, folder.curation_scores(name), len(plan.examples),
                            GradeCounts(planned=len(plan.examples), already_scored=len(plan.done)), structured=structured)
    if dry_run:
        outcome.dry_run = dry_run_lines(plan, settings, engine_settings)
        return outcome
    resolved = ResolvedCuration(**settings.model_dump(), engine=engine_settings,
                                batch_api=batch if settings.batch else None)
    section = ("curation", name)
    with JsonlWriter(outcome.scores) as writer:
        for item, why in plan.skip:  # free: written before anything is sent
            writer.append(item.skipped(why))
        outcome.skipped_now = len(plan.skip)
        outcome.skipped_saved_usd = _least_cost([item.prompt() for item, _ in plan.skip], settings, engine_settings)
        if todo.items:
            with Ledger.for_run(run) as ledger:
                engine = None if settings.batch else Engine(engine_settings, ledger, api_key=api_key,
                                                            http_client=http_client)
                folder.write_config_section(section, resolved)  # what was asked, before anything is sent
                if engine is not None:  # json_schema, json_object (llama.cpp) or text: as the server takes it
                    structured, note = await choose_structured(engine, settings.structured, settings.judge_model, folder)
                    if note:
                        print(note, file=err)
                grading = Grading(todo, writer, structured=structured, retries=settings.retries,
                                  max_tokens=settings.max_tokens, stage=STAGE)
                if engine is not None:
                    await grade_online(grading, engine)
                else:
                    await grade_batch(grading, ledger, engine_settings, batch or BatchSettings(), http_client,
                                      api_key, err)
            counts = grading.finish()
            counts.planned, counts.already_scored = outcome.counts.planned, outcome.counts.already_scored
            outcome.counts = counts
    outcome.structured = structured
    folder.write_config_section(section, resolved.model_copy(update={"structured": "yes" if structured else "no"}))
    left = outcome.counts.failed + outcome.counts.unfinished
    if left:
        outcome.not_selected_why = (f"{left} examples are not graded yet; the selection is written when every "
                                    "example has a grade (rerun the same command)")
    else:
        outcome.selection = write_selection(folder, name, settings)
    return outcome


def _least_cost(prompts: list[GradingPrompt], settings: CurateSettings, engine_settings: EngineSettings) -> float | None:
    """What the prompts' input alone would have cost (their replies not counted); None: no price."""
    if not prompts:
        return 0.0
    prices = price_table_for(engine_settings)
    price = prices.lookup(settings.judge_model)
    if price is None:
        return None
    requests = [ChatRequest(STAGE, settings.judge_model, p.messages, p.params(max_tokens=1)) for p in prompts]
    tokens = worst_case(requests, prices, batch=settings.batch).input_tokens
    return tokens * (price.batch_input if settings.batch else price.input) / 1e6


def dry_run_lines(plan: CurationTodo, settings: CurateSettings, engine_settings: EngineSettings) -> list[str]:
    """What a curation would send and cost, with nothing sent and nothing written."""
    todo = plan.todo
    lines = [f"curation {settings.curation} of {len(plan.examples)} examples by {settings.judge_model}: "
             f"{len(plan.done)} graded before, {len(todo.items)} to grade"
             + (f", {len(plan.skip)} skipped by the prefilter (no request)" if plan.skip else "")]
    if not todo.items:
        lines.append("nothing to send")
        return lines
    requests = [ChatRequest(STAGE, i.judge_model, p.messages, p.params(structured=True, max_tokens=settings.max_tokens))
                for i in todo.items for p in [i.prompt(0, todo.first_attempt[i.key])]]
    prices = price_table_for(engine_settings)
    if prices.lookup(settings.judge_model) is None:
        lines.append(f"{len(requests)} requests; cost unknown: no price for {settings.judge_model!r} "
                     "(give --price-input and --price-output)")
        return lines
    worst = worst_case(requests, prices, batch=settings.batch)
    lines.append(f"{len(requests)} requests, ~{worst.input_tokens} input tokens (estimated by {worst.estimators}), "
                 f"replies of at most {settings.max_tokens} tokens each")
    paid = [s for s in plan.done.values() if s.state == "scored" and s.cost_usd]
    if paid:
        mean = sum(s.cost_usd or 0.0 for s in paid) / len(paid)
        lines.append(f"expected {usd(mean * len(requests))}: the mean cost of the {len(paid)} grades this curation "
                     "paid for so far")
    price = prices.require(settings.judge_model)
    unit_in, unit_out = (price.batch_input, price.batch_output) if settings.batch else (price.input, price.output)
    low = worst.input_tokens * unit_in / 1e6
    lines.append(f"at most {usd(worst.usd, up=True)} (every reply at max_tokens, {settings.retries} retries not "
                 f"counted), at least {usd(low)} (the prompts alone)"
                 + (", at Batch API prices" if settings.batch else "")
                 + f"; {usd(unit_out)} per 1M output tokens")
    return lines


def summary_lines(run: Path, outcome: CurateOutcome, settings: CurateSettings) -> list[str]:
    c = outcome.counts
    if outcome.dry_run:
        return [*outcome.dry_run, "dry run: nothing was sent or written"]
    graded = c.scored + c.unscored
    lines = [f"curation {outcome.curation}: {outcome.examples} examples"
             + (f" ({c.already_scored} graded before)" if c.already_scored else "")]
    rate = f" ({c.unscored / graded:.1%}: no readable grade after {settings.retries + 1} tries)" if c.unscored else ""
    lines.append(f"graded now: {graded} ({c.scored} scored, {c.unscored} unscored{rate})")
    if outcome.skipped_now:
        saved = "" if outcome.skipped_saved_usd is None else f", saving at least {usd(outcome.skipped_saved_usd)}"
        lines.append(f"skipped by the prefilter: {outcome.skipped_now} (no request{saved})")
    lines.extend(stop_lines(c, "examples"))
    lines.append(f"scores: {outcome.scores}")
    if outcome.selection is not None:
        lines.extend(outcome.selection.lines())
    elif outcome.not_selected_why:
        lines.append(f"selection not written: {outcome.not_selected_why}")
    lines.append(f"report: just report --run {run}")
    return lines


__all__ = ["CurateOutcome", "curate", "curate_async", "dry_run_lines", "summary_lines"]
