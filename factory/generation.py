"""A generation run: settings checked and resolved, the recipe built on the run folder's state, the
requests sent (online or through the Batch API), and the closing summary, or for a dry run the plan.

This is the part behind `python -m factory generate` (factory/commands/generate.py, which turns its
flags into the settings) and the Python API's `factory.generate`.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from factory.batch import BatchSettings, batch_client
from factory.quality import DedupSettings, Deduper, load_run_deduper
from factory.engine import Engine
from factory.errors import FactoryError, FatalAPIError, SettingsError
from factory.quality.filters import FilterSettings
from factory.engine.money import usd
from factory.engine.ledger import Ledger
from factory.engine.pricing import price_table_for
from factory.engine.structured import choose_structured, recorded_mode, wants_structured
from factory.recipes.base import Context, Gate, Recipe
from factory.recipes.conversation import Conversation
from factory.recipes.evol import Evol
from factory.recipes.driver import Driver, describe_failures, usage_totals
from factory.recipes.journal import Journal
from factory.recipes.naver import NaverSearch, NaverSettings
from factory.recipes.outputs import Outputs
from factory.recipes.self_instruct import SelfInstruct
from factory.recipes.settings import GenerateSettings
from factory.recipes.topics import Topics
from factory.recipes.seeds import detect_lang, load_eval_files, load_keywords, load_seed_tasks, seed_dedup_items
from factory.engine.settings import EngineSettings
from schemas import RunFolder, SeedTask, Usage



# --------------------------------------------------------------------------------------------
# Resolving and running


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


def resolve(run: Path, gen: GenerateSettings, engine: EngineSettings, *, dedup: DedupSettings,
            filters: FilterSettings, naver: NaverSettings, batch: BatchSettings | None) -> Resolved:
    """Check the settings together and load the seeds and eval questions; nothing is sent or written."""
    if not engine.model:
        raise SettingsError("no model: give --model (e.g. gpt-4o-mini), or model in the [engine] section of --config")
    if gen.grounding == "naver" and gen.recipe == "self-instruct":
        raise SettingsError("--grounding naver works with --recipe topics or conversation (self-instruct has no "
                            "questions to search)")
    seeds = load_seed_tasks(gen.seeds) if gen.recipe in ("self-instruct", "evol") else load_keywords(gen.seeds)
    lang = gen.lang or detect_lang([s.instruction if isinstance(s, SeedTask) else s for s in seeds])
    return Resolved(
        run=run, gen=gen.model_copy(update={"lang": lang}), engine=engine, dedup=dedup,
        # A Korean run keeps Korean text unless [filters] says otherwise (disabled = ["language"]).
        filters=filters if filters.lang else filters.model_copy(update={"lang": lang}),
        naver=naver, batch=batch, seeds=seeds, eval_items=load_eval_files(gen.eval), lang=lang,
        structured=_structured(run, gen.structured, engine),
    )


def _structured(run: Path, setting: str, engine: EngineSettings) -> bool:
    """What the settings say, or what an earlier probe of this folder found (a dry run sends nothing)."""
    assert engine.model is not None
    recorded = recorded_mode(RunFolder(run), engine.base_url, engine.model) if setting == "auto" else None
    return recorded != "text" if recorded is not None else wants_structured(setting, engine.model)


def save_settings(r: Resolved) -> None:
    """The resolved settings of each section into the run's config.toml (before the first request)."""
    folder = RunFolder(r.run)
    for section, value in (("generate", r.gen), ("engine", r.engine), ("dedup", r.dedup), ("filters", r.filters)):
        folder.write_config_section(section, value)
    if r.gen.grounding == "naver":
        folder.write_config_section("naver", r.naver)
    if r.batch is not None:
        folder.write_config_section("batch", r.batch)


@dataclass
class GenerationEnd:
    """How a run ended: the closing summary, the exit status the command returns, and the figures."""

    summary: str
    status: int  # 0 done or submitted; 1 short of --n (budget, failures, yield); 130 interrupted
    n: int
    kept: int  # in the run folder
    kept_now: int  # by this call
    rejected_now: dict[str, int]  # by reason, this call
    requests: int  # handled by this call, those given back by the ledger included
    cached: int  # given back by the ledger (paid earlier)
    failed: int
    usage: Usage  # paid by this call
    cost_usd: float | None  # paid by this call; None: a price is unknown
    pending: int  # Batch API: requests still on the server (a rerun collects them)
    stopped: str | None  # why the run stopped short of n (None when done or submitted)
    examples_path: Path
    rejected_path: Path


def build_recipe(r: Resolved, *, dry_run: bool, naver: NaverSearch | None = None) -> tuple[Recipe, Context]:
    """The recipe and its context for a run folder, its state restored (journal, kept examples,
    dedup index with seeds and eval questions, measured yields). `dry_run`: nothing is written."""
    folder = RunFolder(r.run)
    journal = Journal(folder.requests, write=not dry_run)
    outputs = Outputs(r.run, write=not dry_run)
    seed_items = seed_dedup_items([s for s in r.seeds if isinstance(s, SeedTask)], r.dedup.text)
    # Seeds, eval questions, and every example this run folder kept before (a resumed run dedups
    # against them too).
    deduper = load_run_deduper(r.run, r.dedup, seeds=seed_items, eval_items=r.eval_items)
    ctx = Context(settings=r.gen, model=r.model, lang=r.lang, structured=r.structured, folder=folder,
                  journal=journal, outputs=outputs, deduper=deduper,
                  gate=Gate(r.filters, deduper, r.lang), dry_run=dry_run)
    recipe: Recipe
    if r.gen.recipe == "self-instruct":
        recipe = SelfInstruct(ctx, [s for s in r.seeds if isinstance(s, SeedTask)])
    elif r.gen.recipe == "evol":
        questions = Deduper(r.dedup)
        questions.add_many(r.eval_items, kind="eval")
        recipe = Evol(ctx, [s for s in r.seeds if isinstance(s, SeedTask)], naver=naver,
                      naver_settings=r.naver if r.gen.grounding == "naver" else None, question_deduper=questions)
    else:
        questions = Deduper(r.dedup)
        questions.add_many(r.eval_items, kind="eval")
        kind = Conversation if r.gen.recipe == "conversation" else Topics
        recipe = kind(ctx, [s for s in r.seeds if isinstance(s, str)], naver=naver,
                      naver_settings=r.naver if r.gen.grounding == "naver" else None, question_deduper=questions)
    recipe.restore_yields()
    return recipe, ctx


async def run_generation(r: Resolved, credentials: tuple[str, str] | None) -> GenerationEnd:
    """Send what the run still needs; `credentials`: Naver's (id, secret) for grounding, else None."""
    with Ledger.for_run(r.run) as ledger:
        engine = Engine(r.engine, ledger) if r.batch is None else None
        if engine is not None:
            # Before the prompts are made, which ask for JSON or for the text format (a probe of
            # the server the first time; what it found is in config.toml after that).
            r.structured, note = await choose_structured(engine, r.gen.structured, r.model, RunFolder(r.run))
            if note:
                print(note, file=sys.stderr)
        return await _generate(r, credentials, ledger, engine)


async def _generate(r: Resolved, credentials: tuple[str, str] | None, ledger: Ledger,
                    engine: Engine | None) -> GenerationEnd:
    naver = None
    if credentials is not None:
        naver = NaverSearch(r.run, r.naver, client_id=credentials[0], client_secret=credentials[1])
    try:
        recipe, ctx = build_recipe(r, dry_run=False, naver=naver)
    except BaseException:
        if naver is not None:
            await naver.aclose()
        raise
    try:
        driver = Driver(recipe, ctx, ledger)
        driver.report.mode = "online" if r.batch is None else "batch"
        try:
            if ctx.need == 0 and not ctx.journal.unprocessed():
                pass  # nothing to do: the summary says so
            elif engine is not None:
                # No total for the progress line: how many requests --n takes is known only
                # as the yield is measured.
                await driver.run_online(engine)
            else:
                async with batch_client(r.engine) as client:
                    await driver.run_batches(client, ledger=ledger, settings=r.engine, batch=r.batch)
        except FatalAPIError as e:
            raise _with_hint(e, r.structured) from None
        text = summary(recipe, ctx, driver, ledger, r.engine)
    finally:
        await recipe.aclose()
        ctx.journal.close()
        ctx.outputs.close()
    report, out = driver.report, ctx.outputs
    if report.pending:
        status = 0  # submitted: a rerun collects
    elif report.engine_stopped == "interrupted":
        status = 130  # Ctrl-C: in-flight requests were drained and recorded; a rerun continues
    else:
        status = 0 if ctx.need == 0 else 1
    stopped = None if report.pending or ctx.need == 0 else (
        ctx.stop_reason or report.engine_stopped or "no more requests could be planned")
    return GenerationEnd(
        text, status, n=ctx.settings.n, kept=out.kept, kept_now=out.kept_now, rejected_now=dict(out.rejected_now),
        requests=report.requests, cached=report.cached, failed=report.failed, usage=report.usage,
        cost_usd=report.cost_usd, pending=report.pending, stopped=stopped, examples_path=out.examples_path,
        rejected_path=out.rejected_path)


def _with_hint(e: FatalAPIError, structured: bool) -> FactoryError:
    if structured and re.search(r"response_format|json_schema|structured", str(e), re.IGNORECASE):
        return FatalAPIError(f"{e}; the endpoint may not support structured output: rerun with --structured no",
                             status=e.status, code=e.code)
    return e


# --------------------------------------------------------------------------------------------
# Summary



def _tokens(u: Usage) -> str:
    cached = f" ({u.cached_input_tokens:,} cached)" if u.cached_input_tokens else ""
    return f"{u.input_tokens:,} input{cached} + {u.output_tokens:,} output"


def _spent(amount: float | None) -> str:
    return "an unknown amount (no price for the model)" if amount is None else usd(amount)


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
    lines.append(f"  tokens this run: {_tokens(r.usage)}; spent {_spent(r.cost_usd)}")
    usage, cost, count = usage_totals(ledger, recipe.stages)
    per_kept = None if cost is None or out.kept == 0 else cost / out.kept
    lines.append(f"  run folder total: {count} requests, {_tokens(usage)}; spent {_spent(cost)}; "
                 f"{usd(per_kept) if per_kept is not None else 'n/a'} per kept example")
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


__all__ = ["GenerationEnd", "Resolved", "build_recipe", "resolve", "run_generation",
           "save_settings", "summary"]
