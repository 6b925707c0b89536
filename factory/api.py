"""The data factory's Python API: one call for a generation run, and the run's data as DataFrames.

    import factory
    plan = factory.generate("runs/ko", recipe="self-instruct", seeds="examples/seed_tasks_ko.jsonl",
                            n=300, model="gpt-4o-mini", max_cost=2, dry_run=True)
    print(plan)                      # the plan the command prints; plan.cost_max_usd, plan.requests ...
    out = factory.generate("runs/ko", recipe="self-instruct", seeds="examples/seed_tasks_ko.jsonl",
                           n=300, model="gpt-4o-mini", max_cost=2)
    out.kept, out.rejected_now, out.cost_usd
    df = factory.examples("runs/ko")  # polars DataFrame of the kept examples

`generate` takes the settings the command takes (`python -m factory generate`), as the same
settings objects (`GenerateSettings`, `EngineSettings`, `DedupSettings`, `FilterSettings`) or as
keyword arguments named like their fields, over an optional TOML file (`config`), and raises the
same errors (`SettingsError`, `FatalAPIError`, ... all `schemas.UserError`). It runs inside a notebook's
event loop too (`generate` runs the requests in a worker thread there; `generate_async` is the
awaitable form). The API key comes from the environment (OPENAI_API_KEY) or `.env`, as for the
commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from factory.batch import BatchSettings
from factory.dry_run import StageProjection, dry_run
from factory.engine.progress import ProgressBar, use_display
from factory.engine.settings import EngineSettings, settings_from
from factory.errors import FactoryError, SettingsError
from factory.exporting import ExportResult, export_run
from factory.generation import (
    GenerationEnd,
    Resolved,
    resolve,
    run_generation,
    save_settings,
)
from factory.engine.notebook import ProgressMode, run_async, wants_bar
from factory.quality import DedupSettings
from factory.quality.filters import FilterSettings
from factory.recipes.naver import NaverSettings, credentials_from_env

from factory.recipes.settings import GenerateSettings
from schemas import Example, Rejected, RunFolder, Usage, frame, read_records

if TYPE_CHECKING:
    import polars as pl



@dataclass(frozen=True)
class GenerationPlan:
    """What a run would send, from a dry run (nothing sent, nothing written). `str(plan)` is the
    plan as `python -m factory generate --dry-run` prints it."""

    run: Path
    recipe: str
    model: str
    lang: str
    batch: bool
    n: int
    kept: int  # examples the run folder holds already
    stages: tuple[StageProjection, ...]
    cost_max_usd: float | None  # the most requests, every answer at max_tokens; None: no price for the model
    cost_expected_usd: float | None  # the expected requests at the expected answer length
    text: str

    @property
    def requests(self) -> int:
        """Expected, at the assumed yield."""
        return sum(s.requests for s in self.stages)

    @property
    def requests_range(self) -> tuple[int, int]:
        """The fewest and the most requests (at the high and the low end of the yield)."""
        return sum(s.requests_low for s in self.stages), sum(s.requests_high for s in self.stages)

    @property
    def input_tokens(self) -> int:
        return sum(s.input_tokens for s in self.stages)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class GenerationOutcome:
    """What a run did. `str(outcome)` is the command's closing summary."""

    run: Path
    n: int
    kept: int  # examples in the run folder
    kept_now: int  # kept by this call
    rejected_now: dict[str, int]  # dropped by this call, by reason
    requests: int  # handled by this call, those the ledger gave back included
    cached: int  # given back by the ledger: paid by an earlier call
    failed: int
    usage: Usage  # paid by this call
    cost_usd: float | None  # paid by this call; None: a price is unknown
    pending: int  # Batch API: requests still on the server; call again to collect them
    stopped: str | None  # why the run stopped short of n; None when it has them (or is pending)
    status: int  # the command's exit status: 0 done or submitted, 1 short of n, 130 interrupted
    examples_path: Path
    rejected_path: Path
    summary: str

    @property
    def done(self) -> bool:
        return self.kept >= self.n

    def examples(self) -> pl.DataFrame:
        """The run's kept examples (all of them, not only this call's) as a polars DataFrame."""
        return examples(self.run)

    def __str__(self) -> str:
        return self.summary


# --------------------------------------------------------------------------------------------
# Settings: the command's, from objects or keyword arguments


def _route(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split keyword arguments between GenerateSettings and EngineSettings by field name."""
    gen: dict[str, Any] = {}
    engine: dict[str, Any] = {}
    for key, value in options.items():
        if key in GenerateSettings.model_fields:
            gen[key] = value
        elif key in EngineSettings.model_fields:
            engine[key] = value
        else:
            raise SettingsError(
                f"unknown setting {key!r}: generate() takes the fields of GenerateSettings "
                f"({', '.join(GenerateSettings.model_fields)}) and of EngineSettings "
                f"({', '.join(EngineSettings.model_fields)})")
    return gen, engine


def resolve_call(run: str | Path, *, config: str | Path | None, settings: GenerateSettings | None,
                 engine: EngineSettings | None, dedup: DedupSettings | None, filters: FilterSettings | None,
                 naver: NaverSettings | None, batch: bool | BatchSettings, progress: ProgressMode,
                 options: dict[str, Any]) -> Resolved:
    """The settings of a call, checked as the command checks its flags; nothing is sent or written."""
    config_path = Path(config) if config is not None else None
    gen_over, engine_over = _route(options)
    if isinstance(gen_over.get("eval"), (str, Path)):
        gen_over["eval"] = [gen_over["eval"]]
    if progress == "none":
        engine_over["progress"] = False
    gen = settings_from(GenerateSettings, settings, config_path, "generate", True, gen_over)
    engine_settings = settings_from(EngineSettings, engine, config_path, "engine", False, engine_over)
    batch_settings = None
    if isinstance(batch, BatchSettings):
        batch_settings = batch
    elif batch:
        batch_settings = settings_from(BatchSettings, None, config_path, "batch", True, {})
    return resolve(
        Path(run), gen, engine_settings,
        dedup=settings_from(DedupSettings, dedup, config_path, "dedup", True, {}),
        filters=settings_from(FilterSettings, filters, config_path, "filters", True, {}),
        naver=settings_from(NaverSettings, naver, config_path, "naver", True, {}),
        batch=batch_settings,
    )


# --------------------------------------------------------------------------------------------
# The plan and the outcome


def plan_of(r: Resolved) -> GenerationPlan:
    """The dry run of a resolved call, with its figures; the run folder is not touched."""
    d = dry_run(r)
    return GenerationPlan(run=r.run, recipe=r.gen.recipe, model=r.model, lang=r.lang, batch=r.batch is not None,
                          n=r.gen.n, kept=d.kept, stages=d.stages, cost_max_usd=d.cost_max_usd,
                          cost_expected_usd=d.cost_expected_usd, text=d.text)


def _outcome(r: Resolved, end: GenerationEnd) -> GenerationOutcome:
    return GenerationOutcome(
        run=r.run, n=end.n, kept=end.kept, kept_now=end.kept_now, rejected_now=end.rejected_now,
        requests=end.requests, cached=end.cached, failed=end.failed, usage=end.usage, cost_usd=end.cost_usd,
        pending=end.pending, stopped=end.stopped, status=end.status, examples_path=end.examples_path,
        rejected_path=end.rejected_path, summary=end.summary)


# --------------------------------------------------------------------------------------------
# The calls


async def generate_async(
    run: str | Path, *, recipe: Literal["self-instruct", "topics", "conversation", "evol"] | None = None, seeds: str | Path | None = None,
    n: int | None = None, model: str | None = None, max_cost: float | None = None, dry_run: bool = False,
    batch: bool | BatchSettings = False, config: str | Path | None = None, settings: GenerateSettings | None = None,
    engine: EngineSettings | None = None, dedup: DedupSettings | None = None, filters: FilterSettings | None = None,
    naver: NaverSettings | None = None, progress: ProgressMode = "auto", **options: Any,
) -> GenerationPlan | GenerationOutcome:
    """`generate`, awaitable (in a notebook: `await factory.generate_async(...)`)."""
    bar = wants_bar(progress)  # checks the value too
    options = {"recipe": recipe, "seeds": seeds, "n": n, "model": model, "max_cost": max_cost, **options}
    r = resolve_call(run, config=config, settings=settings, engine=engine, dedup=dedup, filters=filters,
                     naver=naver, batch=batch, progress=progress, options=options)
    if dry_run:
        return plan_of(r)
    credentials = credentials_from_env() if r.gen.grounding == "naver" else None
    save_settings(r)
    with use_display(ProgressBar if bar else None):
        end = await run_generation(r, credentials)
    return _outcome(r, end)


@overload
def generate(run: str | Path, *, dry_run: Literal[True], **kwargs: Any) -> GenerationPlan: ...


@overload
def generate(run: str | Path, *, dry_run: Literal[False] = False, **kwargs: Any) -> GenerationOutcome: ...


def generate(run: str | Path, *, dry_run: bool = False, **kwargs: Any) -> GenerationPlan | GenerationOutcome:
    """Generate instruction data into the run folder `run` until `n` examples are kept (or the
    budget `max_cost` is spent, or the yield collapses); with `dry_run=True` send nothing and
    return the plan (requests, estimated tokens, the most it can cost).

    Keyword arguments: `recipe` ("self-instruct", "topics", "conversation" or "evol"), `seeds` (seed tasks JSONL or a
    keyword file), `n`, `model`, `max_cost` (USD), `batch` (True or BatchSettings: the Batch API),
    `config` (a TOML file with the command's sections), the settings objects `settings`
    (GenerateSettings), `engine` (EngineSettings), `dedup`, `filters`, `naver`, `progress`
    ("auto": a bar in a notebook, the terminal line elsewhere; "bar", "line", "none"), and any field
    of GenerateSettings or EngineSettings by name (`eval=`, `lang=`, `temperature=`, `base_url=`,
    `rpm=`, `tpm=`, `max_concurrency=`, ...).

    A call again with the same run continues where the last one stopped, as the command does.
    Raises SettingsError (a setting to change), FatalAPIError (the API refused the key, the model
    or the requests), all schemas.UserError. Works inside a running event loop (a notebook's) by
    running in a worker thread; see also `generate_async`.
    """
    return run_async(_generate_call, run, dry_run, kwargs)


async def _generate_call(run: str | Path, dry_run: bool, kwargs: dict[str, Any]) -> GenerationPlan | GenerationOutcome:
    return await generate_async(run, dry_run=dry_run, **kwargs)


# --------------------------------------------------------------------------------------------
# The run's data as DataFrames


def examples(run: str | Path) -> pl.DataFrame:
    """The kept examples of `run` (examples.jsonl) as a polars DataFrame: id, instruction, input,
    output, lang, and from the provenance recipe, model and cost_usd (this example's share)."""
    path = RunFolder(run).examples
    items = read_records(path, Example, FactoryError,
                         f"no examples at {path}: generate them first (factory.generate({str(run)!r}, ...))")
    rows = [{"id": e.id, "instruction": e.instruction, "input": e.input, "output": e.output, "lang": e.lang,
             "recipe": e.provenance.recipe if e.provenance else None,
             "model": e.provenance.model if e.provenance else None,
             "cost_usd": e.provenance.cost_usd if e.provenance else None} for e in items]
    return frame(rows, {"id": "String", "instruction": "String", "input": "String", "output": "String",
                        "lang": "String", "recipe": "String", "model": "String", "cost_usd": "Float64"},
                 FactoryError)


def rejected(run: str | Path) -> pl.DataFrame:
    """The dropped items of `run` (rejected.jsonl) as a polars DataFrame: id, reason, detail, text."""
    items = read_records(RunFolder(run).rejected, Rejected, FactoryError, None)
    rows = [{"id": r.id, "reason": r.reason, "detail": r.detail, "text": r.text} for r in items]
    return frame(rows, {"id": "String", "reason": "String", "detail": "String", "text": "String"}, FactoryError)


def export(run: str | Path, *, format: str, out: str | Path, force: bool = False, curation: str | None = None,
           min_score: float | None = None, ids: str | Path | None = None) -> ExportResult:
    """Write the kept examples of `run` to `out` (.jsonl or .parquet) in `format` ("messages", "alpaca",
    "sharegpt" or "prompt-completion"), with a dataset card (README.md) beside it, as `python -m factory
    export` does. `curation` (a curation's name) with `min_score`, or `ids` (a file of ids, one a line),
    choose a subset. Raises ExportError (an unknown format, an output that exists without `force`, a run
    with nothing kept, an empty selection); nothing is written then."""
    return export_run(run, format=format, out=out, force=force, curation=curation, min_score=min_score, ids=ids)


__all__ = ["ExportResult", "GenerationOutcome", "GenerationPlan", "StageProjection", "examples", "export", "generate",
           "generate_async", "rejected"]
