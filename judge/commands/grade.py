"""`python -m judge grade` (`just judge`): grade a run's answers with an LLM judge, through the engine.

    just judge --run runs/NAME --mode single --judge-model gpt-4o [--model lora]
    just judge --run runs/NAME --mode pair --judge-model gpt-4o --model lora --baseline base [--batch]
    just judge --run runs/NAME --mode reference --judge-model gpt-4o --questions evalsets/ko.jsonl

Reads `RUN/eval/answers.jsonl` and the question files (`--questions`; by default the files the
answers were made from, as `trainer answer` and `judge answer` record them in `RUN/config.toml`),
plans the gradings (judge/grading/plan.py), and sends them as stage "judge" through the factory engine
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

This module is the command; the grading is judge/grading/ (run.py puts together the settings
in settings.py, the inputs and what is left to grade in inputs.py, and the rounds of requests and
replies in rounds.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from factory.batch import add_batch_arguments, batch_settings_from_args
from factory.engine import add_engine_arguments, engine_settings_from_args, EngineSettings, wants_structured
from judge.errors import structured_hint
from judge.grading.settings import JudgeSettings, load_judge_settings
from judge.grading.run import grade_run, summary_lines
from judge.grading.plan import MODES

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
    return load_judge_settings(getattr(args, "config", None), overrides)


def engine_settings_for(args: argparse.Namespace, judge: JudgeSettings) -> EngineSettings:
    """The engine's settings from its flags and [engine], with the judge model as the model."""
    return engine_settings_from_args(argparse.Namespace(**{**vars(args), "model": judge.judge_model}))


def main(args: argparse.Namespace) -> int:
    settings = judge_settings_from_args(args)
    engine_settings = engine_settings_for(args, settings)
    batch = batch_settings_from_args(args) if settings.batch else None
    with structured_hint(wants_structured(settings.structured, settings.judge_model)):
        outcome = grade_run(args.run, settings, engine_settings, batch)
    print("\n".join(summary_lines(args.run, outcome, settings)))
    c = outcome.counts
    if c.stopped_reason == "interrupted":
        return 130
    return 1 if c.failed or c.unfinished else 0
