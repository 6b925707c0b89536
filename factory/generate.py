"""`python -m factory generate`: instruction data from seeds with a recipe, until --n are kept.

    python -m factory generate --run runs/ko --recipe self-instruct --seeds examples/seed_tasks_ko.jsonl \\
        --n 5000 --model gpt-4o-mini --max-cost 20 [--dry-run] [--eval evalsets/ko.jsonl] [--batch]

Recipes (factory/recipes): `self-instruct` (seed tasks -> new tasks, as Stanford Alpaca did) and
`topics` (keywords -> questions -> answers, as the Korean tutorial did, optionally grounded with
Naver search snippets). Every produced example passes the filters and the near-duplicate check
against the seeds, the evaluation questions (--eval) and every kept example; kept ones go to
runs/NAME/examples.jsonl with their provenance, the others to rejected.jsonl with the reason.

--n counts KEPT examples: the run asks until it has them, the budget (--max-cost) ends, or the
yield collapses. --dry-run sends nothing and prints the plan: requests, tokens (counted from the
rendered prompts), cost and duration. A rerun of the same command continues: what the ledger has
done is not paid again and nothing is written twice.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from factory.batch import BatchSettings, add_batch_arguments, batch_client, batch_settings_from_args
from factory.quality import DedupSettings, Deduper, load_run_deduper
from factory.engine import Engine
from factory.errors import FactoryError, FatalAPIError, SettingsError
from factory.quality.filters import FilterSettings
from factory.engine.ledger import Ledger
from factory.engine.pricing import price_table_for
from factory.recipes.base import Context, Gate, Recipe, StagePlan, wants_structured
from factory.recipes.driver import Driver, describe_failures, usage_totals
from factory.recipes.journal import JOURNAL_FILE, Journal
from factory.recipes.naver import NaverSearch, NaverSettings, credentials_from_env
from factory.recipes.outputs import Outputs
from factory.recipes.self_instruct import SelfInstruct
from factory.recipes.settings import GenerateSettings
from factory.recipes.topics import Topics
from factory.recipes.seeds import load_eval_items, load_keywords, load_seed_tasks, seed_dedup_items
from factory.engine.settings import EngineSettings, add_engine_arguments, engine_settings_from_args, load_settings, save_resolved
from factory.engine.tokens import estimate_input, estimator_name
from schemas import SeedTask, Usage

STATE_DIR = "generate"

# Command-line flag -> GenerateSettings field (None values leave the TOML file's value).
_FIELDS = {
    "recipe": "recipe", "seeds": "seeds", "n": "n", "lang": "lang", "structured": "structured", "eval": "eval",
    "prompts": "prompts", "temperature": "temperature", "top_p": "top_p", "seed": "seed",
    "tasks_per_request": "tasks_per_request", "seed_examples": "seed_examples",
    "generated_examples": "generated_examples", "keywords_per_request": "keywords_per_request",
    "questions_per_keyword": "questions_per_keyword", "answers_per_request": "answers_per_request",
    "grounding": "grounding", "min_yield": "min_yield", "yield_window": "yield_window",
    "assumed_yield": "assumed_yield",
}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "generate",
        help="generate instruction data with a recipe (self-instruct, topics) until --n examples are kept",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run", required=True, type=Path, help="run folder (ledger, examples, config)")
    p.add_argument("--dry-run", action="store_true", help="send nothing: print the plan, tokens, cost and duration")
    g = p.add_argument_group("what to generate (override the [generate] section of --config)")
    g.add_argument("--recipe", choices=("self-instruct", "topics"))
    g.add_argument("--seeds", type=Path, help="seed tasks (self-instruct, JSONL) or keywords (topics, one per line)")
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
    g.add_argument("--keywords-per-request", type=int, help="topics: keywords per questions request")
    g.add_argument("--questions-per-keyword", type=int, help="topics: questions asked per keyword")
    g.add_argument("--answers-per-request", type=int, help="topics: questions answered per request")
    g.add_argument("--grounding", choices=("none", "naver"), help="topics: Naver search snippets in the answer prompt")
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
# Inputs: seeds, keywords, evaluation questions


def detect_lang(texts: list[str]) -> str:
    """"ko" when Hangul is a real part of the letters (Korean text carries English terms), else "en"."""
    joined = "".join(texts)
    hangul = sum(1 for c in joined if "\uac00" <= c <= "\ud7a3")
    latin = sum(1 for c in joined if c.isascii() and c.isalpha())
    return "ko" if hangul and hangul / (hangul + latin) >= 0.3 else "en"


def eval_items(paths: list[Path]) -> list[tuple[str, str]]:
    """(id, text) of every evaluation question (each turn), ids prefixed with the file's name:
    a rejection then says which file it came from, and two files may share question ids."""
    return [(f"{Path(path).name}:{item_id}", text) for path in paths for item_id, text in load_eval_items(path)]


# --------------------------------------------------------------------------------------------
# The command


@dataclass
class Resolved:
    """Everything a run needs, read and checked before the first request is sent."""

    run: Path
    gen: GenerateSettings
    engine: EngineSettings
    dedup: DedupSettings
    filters: FilterSettings  # with the run's language filled in
    naver: NaverSettings
    batch: BatchSettings | None
    seeds: list[SeedTask] | list[str]
    eval_items: list[tuple[str, str]]
    lang: str
    structured: bool

    @property
    def model(self) -> str:
        assert self.engine.model is not None
        return self.engine.model


def resolve(args: argparse.Namespace) -> Resolved:
    gen = generate_settings_from_args(args)
    engine = engine_settings_from_args(args)
    if not engine.model:
        raise SettingsError("no model: give --model (e.g. gpt-4o-mini), or model in the [engine] section of --config")
    if gen.grounding == "naver" and gen.recipe != "topics":
        raise SettingsError("--grounding naver works with --recipe topics (self-instruct has no questions to search)")
    filter_settings = filter_settings_from_args(args)
    seeds = load_seed_tasks(gen.seeds) if gen.recipe == "self-instruct" else load_keywords(gen.seeds)
    lang = gen.lang or detect_lang([s.instruction if isinstance(s, SeedTask) else s for s in seeds])
    return Resolved(
        run=args.run, gen=gen.model_copy(update={"lang": lang}), engine=engine, dedup=dedup_settings_from_args(args),
        # A Korean run keeps Korean text unless [filters] says otherwise (disabled = ["language"]).
        filters=filter_settings if filter_settings.lang else filter_settings.model_copy(update={"lang": lang}),
        naver=naver_settings_from_args(args), batch=batch_settings_from_args(args) if args.batch else None,
        seeds=seeds, eval_items=eval_items(gen.eval), lang=lang,
        structured=wants_structured(gen.structured, engine.model),
    )


def main(args: argparse.Namespace) -> int:
    r = resolve(args)
    if args.dry_run:
        recipe, ctx = build_recipe(r, dry_run=True)
        try:
            print(dry_run_report(recipe, ctx, r.engine, batch=r.batch is not None))
        finally:
            ctx.journal.close()
            ctx.outputs.close()
        return 0
    credentials = credentials_from_env() if r.gen.grounding == "naver" else None
    for section, value in (("generate", r.gen), ("engine", r.engine), ("dedup", r.dedup), ("filters", r.filters)):
        save_resolved(r.run, section, value)
    if r.gen.grounding == "naver":
        save_resolved(r.run, "naver", r.naver)
    if r.batch is not None:
        save_resolved(r.run, "batch", r.batch)
    return anyio.run(_generate, r, credentials)


def build_recipe(r: Resolved, *, dry_run: bool, naver: NaverSearch | None = None) -> tuple[Recipe, Context]:
    """The recipe and its context for a run folder, its state restored (journal, kept examples,
    dedup index with seeds and eval questions, measured yields). `dry_run`: nothing is written."""
    state_dir = r.run / STATE_DIR
    journal = Journal(state_dir / JOURNAL_FILE, write=not dry_run)
    outputs = Outputs(r.run, write=not dry_run)
    seed_items = seed_dedup_items([s for s in r.seeds if isinstance(s, SeedTask)], r.dedup.text)
    # Seeds, eval questions, and every example this run folder kept before (a resumed run dedups
    # against them too).
    deduper = load_run_deduper(r.run, r.dedup, seeds=seed_items, eval_items=r.eval_items)
    ctx = Context(settings=r.gen, model=r.model, lang=r.lang, structured=r.structured, run_dir=r.run,
                  state_dir=state_dir, journal=journal, outputs=outputs, deduper=deduper,
                  gate=Gate(r.filters, deduper, r.lang), dry_run=dry_run)
    recipe: Recipe
    if r.gen.recipe == "self-instruct":
        recipe = SelfInstruct(ctx, [s for s in r.seeds if isinstance(s, SeedTask)])
    else:
        questions = Deduper(r.dedup)
        questions.add_many(r.eval_items, kind="eval")
        recipe = Topics(ctx, [s for s in r.seeds if isinstance(s, str)], naver=naver,
                        naver_settings=r.naver if r.gen.grounding == "naver" else None, question_deduper=questions)
    recipe.restore_yields()
    return recipe, ctx


async def _generate(r: Resolved, credentials: tuple[str, str] | None) -> int:
    naver = None
    if credentials is not None:
        naver = NaverSearch(r.run / STATE_DIR, r.naver, client_id=credentials[0], client_secret=credentials[1])
    try:
        recipe, ctx = build_recipe(r, dry_run=False, naver=naver)
    except BaseException:
        if naver is not None:
            await naver.aclose()
        raise
    try:
        with Ledger.for_run(r.run) as ledger:
            driver = Driver(recipe, ctx, ledger)
            driver.report.mode = "online" if r.batch is None else "batch"
            try:
                if ctx.need == 0 and not ctx.journal.unprocessed():
                    pass  # nothing to do: the summary says so
                elif r.batch is None:
                    # No total for the progress line: how many requests --n takes is known only
                    # as the yield is measured.
                    await driver.run_online(Engine(r.engine, ledger))
                else:
                    async with batch_client(r.engine) as client:
                        await driver.run_batches(client, ledger=ledger, settings=r.engine, batch=r.batch)
            except FatalAPIError as e:
                raise _with_hint(e, r.structured) from None
            print(summary(recipe, ctx, driver, ledger, r.engine))
    finally:
        await recipe.aclose()
        ctx.journal.close()
        ctx.outputs.close()
    if driver.report.pending:
        return 0  # submitted: a rerun collects
    if driver.report.engine_stopped == "interrupted":
        return 130  # Ctrl-C: in-flight requests were drained and recorded; a rerun continues
    return 0 if ctx.need == 0 else 1


def _with_hint(e: FatalAPIError, structured: bool) -> FactoryError:
    if structured and re.search(r"response_format|json_schema|structured", str(e), re.IGNORECASE):
        return FatalAPIError(f"{e}; the endpoint may not support structured output: rerun with --structured no",
                             status=e.status, code=e.code)
    return e


# --------------------------------------------------------------------------------------------
# Summary


def _usd(x: float | None) -> str:
    if x is None:
        return "unknown (no price for the model)"
    if x >= 1:
        return f"${x:.2f}"
    return f"${x:.4f}" if x >= 0.01 else f"${x:.6f}"


def _tokens(u: Usage) -> str:
    cached = f" ({u.cached_input_tokens:,} cached)" if u.cached_input_tokens else ""
    return f"{u.input_tokens:,} input{cached} + {u.output_tokens:,} output"


def summary(recipe: Recipe, ctx: Context, driver: Driver, ledger: Ledger, engine_settings: EngineSettings) -> str:
    out, r, n = ctx.outputs, driver.report, ctx.settings.n
    lines = [f"generate ({recipe.name}, {ctx.model}, {ctx.lang}, {r.mode}): kept {out.kept_now} examples in this run; "
             f"{out.kept} of {n} in {out.examples_path}"]
    rejected_now = sum(out.rejected_now.values())
    if rejected_now:
        reasons = ", ".join(f"{k} {v}" for k, v in out.rejected_now.most_common())
        lines.append(f"  rejected in this run: {rejected_now} ({reasons}) -> {out.rejected_path}")
    else:
        lines.append("  rejected in this run: 0")
    lines.append(f"  requests: {r.requests} handled ({r.cached} from the ledger, paid earlier), {r.failed} failed")
    for failure in describe_failures(r):
        lines.append(f"    failed: {failure}")
    lines.append(f"  tokens this run: {_tokens(r.usage)}; spent {_usd(r.cost_usd)}")
    usage, cost, count = usage_totals(ledger, recipe.stages)
    per_kept = None if cost is None or out.kept == 0 else cost / out.kept
    lines.append(f"  run folder total: {count} requests, {_tokens(usage)}; spent {_usd(cost)}; "
                 f"{_usd(per_kept) if per_kept is not None else 'n/a'} per kept example")
    prices = price_table_for(engine_settings)
    lines.append(f"  priced with {prices.dated()}")
    if warning := prices.staleness_warning():
        lines.append(f"  {warning}")
    if r.pending:
        lines.append(f"  {r.pending} requests are in batches on the server: rerun the same command to collect them")
    elif out.kept >= n:
        lines.append(f"  done: {out.kept} examples kept (asked for {n})")
    else:
        why = ctx.stop_reason or (f"stopped by the engine ({r.engine_stopped})" if r.engine_stopped else None)
        if (why or "").startswith("budget too small: "):  # no rerun can continue: say what to change
            lines.append(f"  stopped short of --n {n}: {why.removeprefix('budget too small: ')}")
            return "\n".join(lines)
        if r.engine_stopped == "budget" or (why or "").startswith("budget"):
            why = f"the budget (--max-cost {engine_settings.max_cost}) is spent"
        lines.append(f"  stopped short of --n {n}: {why or 'no more requests could be planned'}; "
                     "rerun the same command to continue")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Dry run


def dry_run_report(recipe: Recipe, ctx: Context, settings: EngineSettings, *, batch: bool) -> str:
    model = ctx.model
    plans: list[StagePlan] = recipe.dry_run()
    unprocessed = ctx.journal.unprocessed()
    est = estimator_name(model)
    lines = [
        "dry run: nothing is sent (the ledger and the run folder are not touched)",
        f"recipe {recipe.name}, model {model}, language {ctx.lang}, "
        f"{'structured output (json_schema)' if ctx.structured else 'text output, parsed'}"
        f"{', Batch API' if batch else ''}",
        f"examples to keep: {ctx.settings.n} ({ctx.outputs.kept} kept already, {ctx.need} to go)",
    ]
    if unprocessed:
        lines.append(f"{len(unprocessed)} planned requests of an earlier run are not processed yet: they are sent "
                     "first (free when the ledger has them done); not counted below")
    total_req = 0
    total_in = 0
    total_out_max = 0
    total_out_expected: float | None = 0.0
    for plan in plans:
        sent = plan.requests
        inputs = [estimate_input(r.model, r.messages, r.params).tokens for r in sent]
        tokens_in = round(sum(inputs) / len(inputs) * plan.planned) if inputs else 0
        out_max = round(sum(r.max_output_tokens for r in sent) / len(sent) * plan.planned) if sent else 0
        counted = (f"the {len(sent)} rendered prompts" if len(sent) == plan.planned
                   else f"{len(sent)} of the {plan.planned} prompts, rendered as an even sample")
        lines.append(f"stage {plan.stage}: {plan.planned} requests")
        lines.append(f"  input tokens: {tokens_in:,} (counted on {counted} by {est}, an estimate)")
        expected = None if plan.expected_output_tokens is None else plan.expected_output_tokens * plan.planned
        lines.append(f"  output tokens: at most {out_max:,} (max_tokens)"
                     + (f", expected ~{expected:,.0f}" if expected is not None else ", expected: not known before the run"))
        for a in plan.assumptions:
            lines.append(f"  assumes: {a}")
        total_req += plan.planned
        total_in += tokens_in
        total_out_max += out_max
        total_out_expected = None if expected is None or total_out_expected is None else total_out_expected + expected
    lines.append(f"total: {total_req} requests, {total_in:,} input tokens, at most {total_out_max:,} output tokens")

    prices = price_table_for(settings)
    price = prices.lookup(model)
    if price is None:
        lines.append(f"cost: unknown: no price for {model!r} (give --price-input/--price-output or --prices)")
    else:
        top = price.cost(Usage(input_tokens=total_in, output_tokens=total_out_max), batch=batch)
        mid = None if total_out_expected is None else price.cost(
            Usage(input_tokens=total_in, output_tokens=round(total_out_expected)), batch=batch)
        basis = f"{'batch ' if batch else ''}prices of {model} from {price.source}"
        cost_line = f"cost: at most {_usd(top)}"
        if mid is not None:
            cost_line += f", expected ~{_usd(mid)}"
        lines.append(f"{cost_line} ({basis}; cached-input discounts not counted)")
        if settings.max_cost is not None and top is not None and top > settings.max_cost:
            lines.append(f"  the worst case is over --max-cost {settings.max_cost}: the run stops when the budget is spent")
    lines.append(f"prices: {prices.dated()}")
    if warning := prices.staleness_warning():
        lines.append(warning)
    lines.append(_duration_line(settings, total_req, total_in + total_out_max, batch))
    return "\n".join(lines)


def _duration_line(settings: EngineSettings, requests: int, reserved_tokens: int, batch: bool) -> str:
    if batch:
        return "duration: the Batch API finishes each stage within 24 hours (usually much sooner)"
    bounds = []
    if settings.rpm:
        bounds.append((requests / settings.rpm, f"{requests} requests at RPM {settings.rpm}"))
    if settings.tpm:
        bounds.append((reserved_tokens / settings.tpm,
                       f"{reserved_tokens:,} tokens reserved (input + max_tokens) at TPM {settings.tpm:,}"))
    if not bounds:
        return ("duration: not projected: no --rpm/--tpm given (the server's x-ratelimit headers set the pace "
                "at run time)")
    minutes, why = max(bounds)
    return f"duration: at least {_minutes(minutes)} under the rate limits ({why}; latency and retries add to it)"


def _minutes(m: float) -> str:
    if m < 1:
        return f"{m * 60:.0f} s"
    if m < 120:
        return f"{m:.1f} min"
    return f"{m / 60:.1f} h"


__all__ = ["Resolved", "add_parser", "build_recipe", "detect_lang", "dry_run_report", "main", "resolve", "summary"]
