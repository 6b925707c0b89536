"""`python -m factory generate`: instruction data from seeds with a recipe, until --n are kept.

    python -m factory generate --run runs/ko --recipe self-instruct --seeds examples/seed_tasks_ko.jsonl \\
        --n 5000 --model gpt-4o-mini --max-cost 20 [--dry-run] [--eval evalsets/ko.jsonl] [--batch]

Recipes (factory/recipes): `self-instruct` (seed tasks -> new tasks, as Stanford Alpaca did) and
`topics` (keywords -> questions -> answers, as the Korean tutorial did, optionally grounded with
Naver search snippets), and `conversation` (topics' first turn, then follow-up questions that build
on the previous answer, with their answers: examples of --turns user turns, in `messages`), and
`evol` (WizardLM's Evol-Instruct: seed tasks or a run's examples rewritten into harder ones, each
checked before its answer is paid for, then answered). Every produced example passes the filters and the near-duplicate check
against the seeds, the evaluation questions (--eval) and every kept example; kept ones go to
runs/NAME/examples.jsonl with their provenance, the others to rejected.jsonl with the reason.

--n counts KEPT examples: the run asks until it has them, the budget (--max-cost) ends, or the
yield collapses. --dry-run sends nothing and prints the plan: requests, tokens (counted from the
rendered prompts), cost and duration. A rerun of the same command continues: what the ledger has
done is not paid again and nothing is written twice.

The run itself is factory/generation.py (also behind the Python API's `factory.generate`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import anyio

from factory.batch import add_batch_arguments, batch_settings_from_args
from factory.engine.settings import add_engine_arguments, engine_settings_from_args, load_settings
from factory.dry_run import dry_run
from factory.generation import resolve, run_generation, save_settings
from factory.quality import DedupSettings
from factory.quality.filters import FilterSettings
from factory.recipes.naver import NaverSettings, credentials_from_env
from factory.recipes.settings import GenerateSettings

# Command-line flag -> GenerateSettings field (None values leave the TOML file's value).
_FIELDS = {
    "recipe": "recipe", "seeds": "seeds", "n": "n", "lang": "lang", "structured": "structured", "eval": "eval",
    "prompts": "prompts", "temperature": "temperature", "top_p": "top_p", "seed": "seed",
    "tasks_per_request": "tasks_per_request", "seed_examples": "seed_examples",
    "generated_examples": "generated_examples", "keywords_per_request": "keywords_per_request",
    "questions_per_keyword": "questions_per_keyword", "answers_per_request": "answers_per_request",
    "grounding": "grounding", "min_yield": "min_yield", "yield_window": "yield_window",
    "assumed_yield": "assumed_yield", "instruct_max_tokens": "instruct_max_tokens",
    "questions_max_tokens": "questions_max_tokens", "answers_max_tokens": "answers_max_tokens",
    "turns": "turns", "followups_max_tokens": "followups_max_tokens",
    "evolve_per_request": "evolve_per_request", "evolve_max_tokens": "evolve_max_tokens",
}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "generate",
        help="generate instruction data with a recipe (self-instruct, topics, conversation, evol) until --n examples are kept",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run", required=True, type=Path, help="run folder (ledger, examples, config)")
    p.add_argument("--dry-run", action="store_true", help="send nothing: print the plan, tokens, cost and duration")
    g = p.add_argument_group("what to generate (override the [generate] section of --config)")
    g.add_argument("--recipe", choices=("self-instruct", "topics", "conversation", "evol"))
    g.add_argument("--seeds", type=Path,
                   help="seed tasks (self-instruct, evol: JSONL, a run's examples.jsonl too) or keywords (topics, "
                        "conversation: one per line)")
    g.add_argument("--n", type=int, help="examples to keep (after filters and dedup)")
    g.add_argument("--lang", choices=("ko", "en"), help="language of the data (default: that of the seeds)")
    g.add_argument("--structured", choices=("auto", "yes", "no"),
                   help="json_schema structured output (auto: unless the model lacks it) or parsed text")
    g.add_argument("--eval", action="append", type=Path, metavar="FILE",
                   help="evaluation questions (JSONL, MT-Bench format) to keep out of the data; repeatable")
    g.add_argument("--prompts", type=Path, help="folder of edited prompt templates (ko/*.txt, en/*.txt)")
    g.add_argument("--temperature", type=float)
    g.add_argument("--top-p", type=float)
    g.add_argument("--seed", type=int, help="seed of the sampling of seeds and keywords")
    g.add_argument("--tasks-per-request", type=int, help="self-instruct: new tasks asked per request")
    g.add_argument("--seed-examples", type=int, help="self-instruct: seed tasks shown per request")
    g.add_argument("--generated-examples", type=int, help="self-instruct: generated tasks shown per request")
    g.add_argument("--instruct-max-tokens", type=int,
                   help="self-instruct: max_tokens per request (default 400 per task; a small model's context may "
                        "need less)")
    g.add_argument("--keywords-per-request", type=int, help="topics: keywords per questions request")
    g.add_argument("--questions-per-keyword", type=int, help="topics: questions asked per keyword")
    g.add_argument("--answers-per-request", type=int, help="topics: questions answered per request")
    g.add_argument("--questions-max-tokens", type=int, help="topics: max_tokens of a questions request (default 80 each)")
    g.add_argument("--answers-max-tokens", type=int, help="topics: max_tokens of an answers request (default 1200 each)")
    g.add_argument("--grounding", choices=("none", "naver"), help="topics: Naver search snippets in the answer prompt")
    g.add_argument("--evolve-per-request", type=int, help="evol: parent instructions evolved per request (default 4)")
    g.add_argument("--evolve-max-tokens", type=int, help="evol: max_tokens of an evolve request (default 250 each)")
    g.add_argument("--turns", type=int, help="conversation: user turns per conversation (default 2)")
    g.add_argument("--followups-max-tokens", type=int,
                   help="conversation: max_tokens of a follow-up request (a question and its answer; default 1400)")
    g.add_argument("--min-yield", type=float, help="stop when recent requests keep less than this share")
    g.add_argument("--yield-window", type=int, help="requests the yield is measured over")
    g.add_argument("--assumed-yield", type=float, help="share of asked items kept, until measured")
    d = p.add_argument_group("near-duplicates ([dedup] section)")
    d.add_argument("--dedup-threshold", type=float, help="Jaccard similarity at which a text is a duplicate")
    n = p.add_argument_group("Naver grounding ([naver] section; NAVER_CLIENT_ID / NAVER_CLIENT_SECRET)")
    n.add_argument("--naver-kinds", help="comma-separated searches: blog,news,kin,encyc,webkr")
    n.add_argument("--naver-display", type=int, help="results per search")
    n.add_argument("--naver-query", choices=("question", "keyword"), help="search for each question or its keyword")
    n.add_argument("--naver-quota", type=int, help="calls allowed per day (default 25000)")
    n.add_argument("--naver-rps", type=float, help="calls per second")
    add_engine_arguments(p)
    add_batch_arguments(p)
    p.set_defaults(func=main)
    return p


# --------------------------------------------------------------------------------------------
# Settings


def generate_settings_from_args(args: argparse.Namespace) -> GenerateSettings:
    overrides = {field: getattr(args, flag, None) for flag, field in _FIELDS.items()}
    config = getattr(args, "config", None)
    return load_settings(config, overrides, model=GenerateSettings, section="generate", section_only=True)


def dedup_settings_from_args(args: argparse.Namespace) -> DedupSettings:
    config = getattr(args, "config", None)
    return load_settings(config, {"threshold": getattr(args, "dedup_threshold", None)}, model=DedupSettings,
                         section="dedup", section_only=True)


def naver_settings_from_args(args: argparse.Namespace) -> NaverSettings:
    kinds = getattr(args, "naver_kinds", None)
    overrides = {
        "kinds": [k.strip() for k in kinds.split(",") if k.strip()] if kinds else None,
        "display": getattr(args, "naver_display", None), "query": getattr(args, "naver_query", None),
        "daily_quota": getattr(args, "naver_quota", None), "calls_per_second": getattr(args, "naver_rps", None),
    }
    config = getattr(args, "config", None)
    return load_settings(config, overrides, model=NaverSettings, section="naver", section_only=True)


def filter_settings_from_args(args: argparse.Namespace) -> FilterSettings:
    config = getattr(args, "config", None)
    return load_settings(config, {}, model=FilterSettings, section="filters", section_only=True)


# --------------------------------------------------------------------------------------------
# The command


def main(args: argparse.Namespace) -> int:
    r = resolve(args.run, generate_settings_from_args(args), engine_settings_from_args(args),
                dedup=dedup_settings_from_args(args), filters=filter_settings_from_args(args),
                naver=naver_settings_from_args(args), batch=batch_settings_from_args(args) if args.batch else None)
    if args.dry_run:
        print(dry_run(r).text)
        return 0
    credentials = credentials_from_env() if r.gen.grounding == "naver" else None
    save_settings(r)
    end = anyio.run(run_generation, r, credentials)
    print(end.summary)
    return end.status


__all__ = ["add_parser", "dedup_settings_from_args", "filter_settings_from_args", "generate_settings_from_args",
           "main", "naver_settings_from_args"]
