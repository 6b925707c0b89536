"""`python -m judge curate` (`just curate`): grade a run's kept examples with an LLM, keep the best.

    just curate --run runs/NAME --judge-model gpt-4o [--keep-min-score 4.5 | --keep-top 0.2]
    just curate --run runs/NAME --judge-model gpt-4o --dry-run          # what it would send and cost
    just curate --run runs/NAME --judge-model gpt-4o --batch --max-cost 5 --prefilter

Every kept example of RUN/examples.jsonl is graded against a rubric (judge/prompts/<lang>/curate.txt:
accuracy, helpfulness, clarity, language_fit, each an integer 1-5; an overall grade 1-5 in half
points; a short rationale in the example's language) through the factory engine as stage "curate"
(rate limits, retries, the run's ledger, cost, --max-cost), or with --batch through the Batch API.
Replies are constrained to the rubric's JSON schema where the server takes one (probed once per
run folder and endpoint); an unreadable reply is asked again (--retries) and then recorded
UNSCORED, never as a number. RUN/curation/NAME/scores.jsonl gets one line per graded example as
soon as it is graded (NAME: --name, default JUDGE-MODEL-v1: another judge or rubric is a new
curation, never an overwrite), with the free signals beside the grade (lengths, repeated 3-grams,
near-duplicates generation dropped). --prefilter skips the LLM for examples those signals
condemn: they are recorded `skipped`, and the summary says what that saved.

When every example has its line, the selection (default: overall >= 4.5, as AlpaGasus) is
written as a run folder of its own (--out; default RUN-NAME-min4.5 beside the run) that
`just train --run` takes; its config.toml [curated_from] points back to the graded run.
Rerunning with another --keep-* rule grades nothing again and writes that selection.

Resume: a rerun grades only the examples without a grade; answered requests come back from the
ledger without being paid again (kill -9 loses nothing it was answered); unscored examples are
asked anew with the next attempt number.

Exit status: 0 done; 1 requests failed, the budget stopped the run, or batches are still running
(rerun to finish); 2 an input or a setting to fix, or the API refused; 130 interrupted.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from factory.batch import add_batch_arguments, batch_settings_from_args
from factory.engine import add_engine_arguments, engine_settings_from_args, wants_structured
from judge.curation.run import curate, summary_lines
from judge.curation.settings import CurateSettings, load_curate_settings
from judge.errors import structured_hint

_FIELDS = ("judge_model", "name", "structured", "retries", "lang", "prefilter", "keep_min_score", "keep_top", "out")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "curate", help="grade a run's kept examples with an LLM and select the best as a new run folder",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, conflict_handler="resolve",
    )
    p.add_argument("--run", required=True, type=Path, help="run folder: examples.jsonl in, curation/NAME/ out")
    add_engine_arguments(p)
    add_batch_arguments(p)
    g = p.add_argument_group("curation (override the [curate] section of --config)")
    g.add_argument("--judge-model", help="the judge model, e.g. gpt-4o")
    g.add_argument("--name", help="the curation's name under RUN/curation/ (default: JUDGE-MODEL-v1)")
    g.add_argument("--structured", choices=("auto", "yes", "no"),
                   help="schema-constrained replies (auto: as the server takes them, probed once); no: parse the text")
    g.add_argument("--retries", type=int, help="more tries for a reply without a readable grade (default 2)")
    g.add_argument("--lang", choices=("en", "ko"), help="prompt and rationale language (default: each example's)")
    g.add_argument("--judge-max-tokens", dest="max_tokens", type=int, help="max_tokens of a reply (default 300)")
    g.add_argument("--prefilter", action="store_const", const=True,
                   help="skip the LLM for examples the free signals condemn (a loop, an empty or echoed output)")
    rule = g.add_mutually_exclusive_group()
    rule.add_argument("--keep-min-score", type=float, help="select overall >= this (default 4.5)")
    rule.add_argument("--keep-top", type=float, help="select this share of the scored examples, best first (0.2)")
    g.add_argument("--out", type=Path, help="the selection's run folder (default: RUN-NAME-min4.5 beside the run)")
    p.add_argument("--dry-run", action="store_true", help="send nothing: print what would be graded and its cost")
    p.set_defaults(func=main)
    return p


def curate_settings_from_args(args: argparse.Namespace) -> CurateSettings:
    overrides = {name: getattr(args, name, None) for name in (*_FIELDS, "max_tokens")}
    if getattr(args, "batch", False):
        overrides["batch"] = True
    return load_curate_settings(getattr(args, "config", None), overrides)


def main(args: argparse.Namespace) -> int:
    settings = curate_settings_from_args(args)
    engine_settings = engine_settings_from_args(argparse.Namespace(**{**vars(args), "model": settings.judge_model}))
    batch = batch_settings_from_args(args) if settings.batch else None
    with structured_hint(wants_structured(settings.structured, settings.judge_model)):
        outcome = curate(args.run, settings, engine_settings, batch, dry_run=args.dry_run)
    print("\n".join(summary_lines(args.run, outcome, settings)))
    c = outcome.counts
    if c.stopped_reason == "interrupted":
        return 130
    return 1 if c.failed or c.unfinished else 0
