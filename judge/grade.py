"""`python -m judge grade` (`just judge`): grade a run's answers with an LLM judge, through the engine.

    just judge --run runs/NAME --mode single --judge-model gpt-4o [--model lora]
    just judge --run runs/NAME --mode pair --judge-model gpt-4o --model lora --baseline base [--batch]
    just judge --run runs/NAME --mode reference --judge-model gpt-4o --questions evalsets/ko.jsonl

Reads `RUN/eval/answers.jsonl` and the question files (`--questions`; by default the files the
answers were made from, as `trainer answer` and `judge answer` record them in `RUN/config.toml`),
plans the gradings (judge/plan.py), and sends them as stage "judge" through the factory engine
(rate limits, retries, ledger, cost, `--max-cost`), or with `--batch` through the Batch API.
Every reply is parsed strictly; one that has no readable verdict is asked again (`--retries`,
each retry a new request: plan.py changes the delimiter nonce with the attempt), and after the
last try the item is written as UNSCORED, never as a number. `RUN/eval/judgments.jsonl` gets one
line per finished item, as soon as it is finished.

Resume: a rerun grades only the items without a scored judgment. Requests the ledger has done are
given back without being paid again (a run killed mid-way loses nothing it was answered); items
recorded unscored are graded again starting at the next attempt number, so the rerun asks anew
instead of being handed the cached unreadable reply. A request that failed at the API (after the
engine's own retries) leaves its item ungraded: the rerun tries it again.

Exit status: 0 done; 1 requests failed, the budget stopped the run, or batches are still running
(rerun to finish); 2 an input or a setting to fix, or the API refused (bad key, unknown model);
130 interrupted.

This module is the command; the settings are in grade_settings.py, the inputs and what is left to
grade in grade_inputs.py, the rounds of requests and replies in grade_rounds.py.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import anyio
import httpx

from factory.batch import BatchSettings, add_batch_arguments, batch_settings_from_args
from factory.engine import Engine
from factory.errors import FactoryError, FatalAPIError
from factory.engine.ledger import Ledger
from factory.recipes.base import wants_structured
from factory.engine.settings import (
    EngineSettings,
    add_engine_arguments,
    engine_settings_from_args,
    load_settings,
    save_resolved,
)
from judge.grade_inputs import load_inputs, left_to_grade
from judge.grade_rounds import GradeCounts, Grading, check_prompts, grade_batch, grade_online
from judge.grade_settings import JUDGMENTS_FILE, SECTION, STAGE, GradeError, JudgeSettings, ResolvedJudge
from judge.plan import MODES, plan_items
from schemas import JsonlError, JsonlWriter, Judgment, read_jsonl

# Command-line flag -> JudgeSettings field (None: not given, the TOML file's value stays).
_FIELDS = {
    "mode": "mode", "judge_model": "judge_model", "label": "model", "baseline": "baseline",
    "questions": "questions", "structured": "structured", "retries": "retries", "lang": "lang",
    "pair_reference": "pair_reference", "judge_max_tokens": "max_tokens",
}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    # "resolve": the engine's --model (the model to call) gives way to ours (the answers' label);
    # the judge model is --judge-model.
    p = subparsers.add_parser(
        "grade", help="grade a run's answers with an LLM judge (single, pair, reference) through the engine",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, conflict_handler="resolve",
    )
    p.add_argument("--run", required=True, type=Path, help="run folder: eval/answers.jsonl in, eval/judgments.jsonl out")
    add_engine_arguments(p)
    add_batch_arguments(p)
    g = p.add_argument_group("grading (override the [judge] section of --config)")
    g.add_argument("--mode", choices=MODES, help="single: 1-10; pair: A/B/tie against --baseline; reference: 1-10 with the reference")
    g.add_argument("--judge-model", help="the judge model, e.g. gpt-4o")
    g.add_argument("--model", dest="label", help="label of the answers to grade (default: the only one in answers.jsonl)")
    g.add_argument("--baseline", help="pair mode: label of the answers to compare against")
    g.add_argument("--questions", type=Path, nargs="+", metavar="FILE",
                   help="question files (default: those recorded by the answer command in RUN/config.toml)")
    g.add_argument("--structured", choices=("auto", "yes", "no"),
                   help="json_schema output (auto: unless the judge model lacks it); no: parse the text")
    g.add_argument("--retries", type=int, help="more tries for a reply without a readable verdict (default 2)")
    g.add_argument("--lang", choices=("en", "ko"), help="judge prompt language (default: the question's)")
    g.add_argument("--no-pair-reference", dest="pair_reference", action="store_const", const=False,
                   help="pair mode: do not show reference answers (math, reasoning, coding)")
    g.add_argument("--judge-max-tokens", type=int, help="max_tokens of a judge reply (default 512)")
    p.set_defaults(func=main)
    return p


def judge_settings_from_args(args: argparse.Namespace) -> JudgeSettings:
    overrides = {name: getattr(args, flag, None) for flag, name in _FIELDS.items()}
    if getattr(args, "batch", False):
        overrides["batch"] = True
    config = getattr(args, "config", None)
    if config is None and overrides["mode"] is None:
        raise GradeError("no grading mode: give --mode single, pair or reference")
    if config is None and overrides["judge_model"] is None:
        raise GradeError("no judge model: give --judge-model, e.g. gpt-4o")
    return load_settings(config, overrides, model=JudgeSettings, section=SECTION, section_only=True)


def engine_settings_for(args: argparse.Namespace, judge: JudgeSettings) -> EngineSettings:
    """The engine's settings from its flags and [engine], with the judge model as the model."""
    return engine_settings_from_args(argparse.Namespace(**{**vars(args), "model": judge.judge_model}))


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
    out_path = run / JUDGMENTS_FILE
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
        save_resolved(run, SECTION, resolved)
        return GradeOutcome(GradeCounts(planned=len(plan.items), already_scored=todo.already_scored), out_path,
                            plan.skipped, inputs.label, structured)

    with Ledger.for_run(run) as ledger:
        # Built before anything is sent: the engine refuses a missing key or a budget without a price.
        engine = None if settings.batch else Engine(engine_settings, ledger, api_key=api_key, http_client=http_client)
        save_resolved(run, SECTION, resolved)
        with JsonlWriter(out_path) as writer:
            grading = Grading(todo, writer, structured=structured, retries=settings.retries,
                              max_tokens=settings.max_tokens)
            if engine is not None:
                anyio.run(grade_online, grading, engine)
            else:
                anyio.run(grade_batch, grading, ledger, engine_settings, batch or BatchSettings(), http_client,
                          api_key, err)
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


def _usd(value: float | None) -> str:
    return "an unknown amount (a price is missing: give --price-input/--price-output)" if value is None else f"${value:.4f}"


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
    if c.failed:
        top = "; ".join(f"{reason} (x{n})" for reason, n in c.failures.most_common(2))
        lines.append(f"{c.failed} items not graded: a judge request failed ({top}); rerun the same command to retry")
    if c.unfinished:
        why = {"budget": "the --max-cost budget is spent", "interrupted": "interrupted",
               "batches pending": "their batches are still running on the server"}.get(c.stopped_reason or "", "the run stopped")
        lines.append(f"{c.unfinished} items not finished: {why}; rerun the same command to continue")
    lines.append(f"spent {_usd(c.cost_usd)} on {c.requests} requests ({c.cached} answered from the ledger, not paid again)")
    lines.append(f"judgments: {outcome.judgments}")
    lines.append(f"report: python -m judge report --run {run}")
    return lines


def main(args: argparse.Namespace) -> int:
    structured = True
    try:
        settings = judge_settings_from_args(args)
        structured = wants_structured(settings.structured, settings.judge_model)
        engine_settings = engine_settings_for(args, settings)
        batch = batch_settings_from_args(args) if settings.batch else None
        outcome = grade_run(args.run, settings, engine_settings, batch)
    except FatalAPIError as e:
        hint = ""
        if structured and e.status == 400:
            hint = " (if the endpoint does not take response_format json_schema, rerun with --structured no)"
        print(f"error: {e}{hint}", file=sys.stderr)
        return 2
    except FactoryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to continue", file=sys.stderr)
        return 130
    print("\n".join(summary_lines(args.run, outcome, settings)))
    c = outcome.counts
    if c.stopped_reason == "interrupted":
        return 130
    return 1 if c.failed or c.unfinished else 0


__all__ = [
    "JUDGMENTS_FILE",
    "SECTION",
    "STAGE",
    "GradeError",
    "GradeOutcome",
    "JudgeSettings",
    "ResolvedJudge",
    "add_parser",
    "grade_run",
    "main",
]
