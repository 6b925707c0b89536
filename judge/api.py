"""The judge's Python API: grade a run's answers, and write the run's whole report.

    import judge
    g = judge.grade("runs/ko", mode="pair", judge_model="gpt-4o", model="lora", baseline="base", max_cost=2)
    g.scored, g.unscored, g.cost_usd, g.judgments()      # judgments: a polars DataFrame
    r = judge.report("runs/ko")
    r.index_html, r.summary["headline"], r.charts
    page = judge.view("runs/ko")                          # report/data.html; in a notebook, shown inline
    c = judge.curate("runs/ko", judge_model="gpt-4o", keep_min_score=4.5)   # grade the data, keep the best
    c.selection, c.scores()                               # the selected run folder; the grades (DataFrame)

`grade` takes the settings `python -m judge grade` takes (`JudgeSettings`, `EngineSettings`, a
TOML file, or keyword arguments named like their fields) and raises the errors the command prints
(`GradeError`, `SettingsError`, `FatalAPIError`: all `schemas.UserError`). It runs inside a notebook's
event loop too (in a worker thread there, which the stop button cancels); `grade_async` is the
awaitable form. In a notebook the engine's progress shows as a bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from factory.engine import (
    GIVEN_AS,
    EngineSettings,
    ProgressBar,
    ProgressMode,
    run_async,
    settings_from,
    use_display,
    wants_bar,
)
from factory.batch import BatchSettings
from factory import SettingsError
from judge.curation.run import CurateOutcome, curate_async
from judge.curation.run import summary_lines as curate_summary
from judge.curation.settings import CurateSettings, load_curate_settings
from judge.errors import CurateError
from judge.grading.settings import GradeError, JudgeSettings, load_judge_settings
from judge.grading.run import grade_run_async, summary_lines
from judge.reports.data_page import MAX_ROWS, DataPage, write_data_page
from judge.reports.overview import OverviewError, write_overview
from schemas import Judgment
from schemas import RunFolder, frame, read_records

if TYPE_CHECKING:
    import polars as pl


@dataclass(frozen=True)
class GradeResult:
    """What a grading call did. `str(result)` is the command's closing summary."""

    run: Path
    settings: JudgeSettings
    label: str  # the answers graded
    planned: int  # items the mode asks for (each question turn, or pair)
    already_scored: int  # graded by an earlier call
    scored: int  # graded now, with a verdict
    unscored: int  # graded now, no readable verdict after the retries (never a number)
    failed: int  # a request failed at the API: a call again tries them
    unfinished: int  # the run stopped (budget, interrupt) or batches still run: a call again continues
    requests: int
    cached: int  # answered from the ledger, not paid again
    cost_usd: float | None  # paid by this call; None: a price is unknown
    judgments_path: Path
    skipped: tuple[str, ...]  # question turns that cannot be graded in this mode, with the reason
    status: int  # the command's exit status: 0 done, 1 failures or unfinished, 130 interrupted
    summary: str

    def judgments(self) -> pl.DataFrame:
        """Every judgment of the run (RUN/eval/judgments.jsonl) as a polars DataFrame."""
        return judgments(self.run)

    def __str__(self) -> str:
        return self.summary


@dataclass(frozen=True)
class ReportResult:
    """The run's whole report (`just report`): index.html, summary.json and the charts."""

    run: Path
    index_html: Path  # one self-contained page (charts embedded): open it, or show it in an IFrame
    summary_json: Path
    summary: dict[str, Any]  # summary.json: "headline", "cost", "training", "scores", ...
    parts: dict[str, bool]  # which parts the run had: cost, training, scores
    charts: tuple[Path, ...]  # the PNG charts in RUN/report

    def html(self) -> str:
        return self.index_html.read_text(encoding="utf-8")


def _split(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword arguments: JudgeSettings fields, then EngineSettings fields (the engine's `model` is the
    judge model, so `model` here is the answers' label, as the command's --model)."""
    judge_over: dict[str, Any] = {}
    engine_over: dict[str, Any] = {}
    for key, value in options.items():
        if key in JudgeSettings.model_fields:
            judge_over[key] = value
        elif key in EngineSettings.model_fields and key != "model":
            engine_over[key] = value
        else:
            raise SettingsError(
                f"unknown setting {key!r}: grade() takes the fields of JudgeSettings "
                f"({', '.join(JudgeSettings.model_fields)}) and of EngineSettings "
                f"({', '.join(f for f in EngineSettings.model_fields if f != 'model')})")
    return judge_over, engine_over


async def _grade(run: Path, settings: JudgeSettings, engine: EngineSettings, batch: BatchSettings | None,
                 bar: bool) -> GradeResult:
    with use_display(ProgressBar if bar else None):
        outcome = await grade_run_async(run, settings, engine, batch)
    c = outcome.counts
    status = 130 if c.stopped_reason == "interrupted" else 1 if c.failed or c.unfinished else 0
    return GradeResult(
        run=run, settings=settings, label=outcome.label, planned=c.planned, already_scored=c.already_scored,
        scored=c.scored, unscored=c.unscored, failed=c.failed, unfinished=c.unfinished, requests=c.requests,
        cached=c.cached, cost_usd=c.cost_usd, judgments_path=outcome.judgments, skipped=tuple(outcome.skipped),
        status=status, summary="\n".join(summary_lines(run, outcome, settings)))


def _prepare(run: str | Path, mode: str | None, judge_model: str | None, model: str | None, baseline: str | None,
             questions: str | Path | list[str | Path] | None, max_cost: float | None, base_url: str | None,
             batch: bool | BatchSettings, config: str | Path | None, settings: JudgeSettings | None,
             engine: EngineSettings | None, progress: ProgressMode, options: dict[str, Any],
             ) -> tuple[Path, JudgeSettings, EngineSettings, BatchSettings | None, bool]:
    bar = wants_bar(progress)
    config_path = Path(config) if config is not None else None
    judge_over, engine_over = _split(options)
    if isinstance(questions, (str, Path)):
        questions = [questions]
    judge_over.update({"mode": mode, "judge_model": judge_model, "model": model, "baseline": baseline,
                       "questions": questions, "batch": True if batch else None})
    if settings is not None:
        judge_settings = settings_from(JudgeSettings, settings, None, "judge", True, judge_over)
    else:
        judge_settings = load_judge_settings(config_path, judge_over, given_as=GIVEN_AS)
    engine_settings, batch_settings = _engine_and_batch(judge_settings.judge_model, judge_settings.batch, engine,
                                                        batch, config_path, progress, engine_over | {
                                                            "max_cost": max_cost, "base_url": base_url})
    return Path(run), judge_settings, engine_settings, batch_settings, bar


def _engine_and_batch(judge_model: str, use_batch: bool, engine: EngineSettings | None, batch: bool | BatchSettings,
                      config: Path | None, progress: ProgressMode, over: dict[str, Any],
                      ) -> tuple[EngineSettings, BatchSettings | None]:
    """The engine's settings of a judge call (the judge model is the engine's model), and the Batch API's."""
    over = over | {"model": judge_model} | ({"progress": False} if progress == "none" else {})
    engine_settings = settings_from(EngineSettings, engine, config, "engine", False, over)
    if not use_batch:
        return engine_settings, None
    return engine_settings, batch if isinstance(batch, BatchSettings) else settings_from(
        BatchSettings, None, config, "batch", True, {})


def grade(run: str | Path, *, mode: Literal["single", "pair", "reference"] | None = None,
          judge_model: str | None = None, model: str | None = None, baseline: str | None = None,
          questions: str | Path | list[str | Path] | None = None, max_cost: float | None = None,
          base_url: str | None = None, batch: bool | BatchSettings = False, config: str | Path | None = None,
          settings: JudgeSettings | None = None, engine: EngineSettings | None = None,
          progress: ProgressMode = "auto", **options: Any) -> GradeResult:
    """Grade the answers in RUN/eval/answers.jsonl with an LLM judge, through the factory engine.

    `mode`: "single" (1-10), "pair" (against `baseline`, both orders) or "reference" (1-10 with the
    reference answer); `judge_model` (e.g. "gpt-4o"); `model`: the label of the answers to grade
    (default: the only one); `questions`: question files (default: those the answers were made
    from); `max_cost` (USD), `base_url`, `batch` (True or BatchSettings: the Batch API); `config`:
    a TOML file with [judge] and [engine]; or the settings objects `settings` (JudgeSettings) and
    `engine` (EngineSettings); other keyword arguments: their fields by name (`retries=`,
    `structured=`, `rpm=`, ...). A call again grades only what is left. Raises GradeError,
    SettingsError, FatalAPIError (all schemas.UserError) as the command reports them.
    """
    args = _prepare(run, mode, judge_model, model, baseline, questions, max_cost, base_url, batch, config, settings,
                    engine, progress, options)
    return run_async(_grade, *args)


async def grade_async(run: str | Path, *, mode: Literal["single", "pair", "reference"] | None = None,
                      judge_model: str | None = None, model: str | None = None, baseline: str | None = None,
                      questions: str | Path | list[str | Path] | None = None, max_cost: float | None = None,
                      base_url: str | None = None, batch: bool | BatchSettings = False,
                      config: str | Path | None = None, settings: JudgeSettings | None = None,
                      engine: EngineSettings | None = None, progress: ProgressMode = "auto",
                      **options: Any) -> GradeResult:
    """`grade`, awaitable (in a notebook: `await judge.grade_async(...)`)."""
    args = _prepare(run, mode, judge_model, model, baseline, questions, max_cost, base_url, batch, config, settings,
                    engine, progress, options)
    return await _grade(*args)


def report(run: str | Path, *, questions: list[str | Path] | tuple[str | Path, ...] = ()) -> ReportResult:
    """Write the run's whole report (cost, training, scores): RUN/report/index.html, summary.json,
    cost.md, scores.md and the charts, as `just report` does. `questions`: question files for the
    categories of judgments that do not carry one. Raises OverviewError (a run with nothing to report)."""
    out = write_overview(Path(run), questions=[Path(q) for q in questions])
    charts = tuple(sorted(out.index_html.parent.glob("*.png")))
    return ReportResult(run=Path(run), index_html=out.index_html, summary_json=out.summary_json,
                        summary=out.summary, parts=out.parts, charts=charts)


def view(run: str | Path, *, max_rows: int = MAX_ROWS) -> DataPage:
    """Write the run's data page, RUN/report/data.html (every stage's records: kept and rejected examples,
    answers side by side with their grades, curation scores), as `just view` does. In a notebook the
    returned DataPage shows the page in the output cell. A file of more than `max_rows` rows is shown
    as a seeded random sample. Raises ViewerError (a run with nothing to show)."""
    return write_data_page(Path(run), max_rows=max_rows)


@dataclass(frozen=True)
class CurateResult:
    """What a curation call did. `str(result)` is the command's closing summary."""

    run: Path
    settings: CurateSettings
    outcome: CurateOutcome
    selection: Path | None  # the selected examples' run folder (None: not every example is graded yet)
    status: int  # the command's exit status: 0 done, 1 failures or unfinished, 130 interrupted
    summary: str

    def scores(self) -> pl.DataFrame:
        """The curation's grades (RUN/curation/NAME/scores.jsonl) as a polars DataFrame."""
        from factory.exporting import CurationScore

        items = read_records(self.outcome.scores, CurationScore, CurateError, f"no scores at {self.outcome.scores}")
        rows = [{"example_id": s.example_id, "status": s.state, "overall": s.overall, **{
            c: s.criteria.get(c) for c in ("accuracy", "helpfulness", "clarity", "language_fit")},
            "rationale": s.rationale, "cost_usd": s.cost_usd} for s in items]
        types = {"overall": "Float64", "cost_usd": "Float64", "accuracy": "Int64", "helpfulness": "Int64",
                 "clarity": "Int64", "language_fit": "Int64"}
        return frame(rows, {k: types.get(k, "String") for k in rows[0]} if rows else {}, CurateError)

    def __str__(self) -> str:
        return self.summary


def curate(run: str | Path, *, judge_model: str | None = None, keep_min_score: float | None = None,
           keep_top: float | None = None, max_cost: float | None = None, base_url: str | None = None,
           batch: bool | BatchSettings = False, dry_run: bool = False, config: str | Path | None = None,
           engine: EngineSettings | None = None, progress: ProgressMode = "auto", **options: Any) -> CurateResult:
    """Grade RUN's kept examples with an LLM (the rubric of judge/prompts/<lang>/curate.txt) and write
    the best as a new run folder, as `just curate` does. Other keyword arguments: CurateSettings'
    fields (`name=`, `prefilter=`, `retries=`, `out=`) and EngineSettings' (`rpm=`, ...). A call
    again grades only what is left. Raises CurateError, SettingsError, FatalAPIError."""
    config_path = Path(config) if config is not None else None
    own = {k: v for k, v in options.items() if k in CurateSettings.model_fields}
    rest = {k: v for k, v in options.items() if k not in own}
    unknown = [k for k in rest if k not in EngineSettings.model_fields or k == "model"]
    if unknown:
        raise SettingsError(f"unknown setting {unknown[0]!r}: curate() takes the fields of CurateSettings "
                            f"({', '.join(CurateSettings.model_fields)}) and of EngineSettings")
    own.update({"judge_model": judge_model, "keep_min_score": keep_min_score, "keep_top": keep_top,
                "batch": True if batch else None})
    settings = load_curate_settings(config_path, own)
    engine_settings, batch_settings = _engine_and_batch(settings.judge_model, settings.batch, engine, batch, config_path,
                                                        progress, rest | {"max_cost": max_cost, "base_url": base_url})
    return run_async(_curate, Path(run), settings, engine_settings, batch_settings, dry_run, wants_bar(progress))


async def _curate(run: Path, settings: CurateSettings, engine: EngineSettings, batch: BatchSettings | None,
                  dry_run: bool, bar: bool) -> CurateResult:
    with use_display(ProgressBar if bar else None):
        outcome = await curate_async(run, settings, engine, batch, dry_run=dry_run)
    c = outcome.counts
    status = 130 if c.stopped_reason == "interrupted" else 1 if c.failed or c.unfinished else 0
    return CurateResult(run, settings, outcome, outcome.selection.folder if outcome.selection else None, status,
                        "\n".join(curate_summary(run, outcome, settings)))


def judgments(run: str | Path) -> pl.DataFrame:
    """RUN/eval/judgments.jsonl as a polars DataFrame: question_id, mode, turn, model, baseline,
    judge_model, status, score, winner, rationale, cost_usd."""
    path = RunFolder(run).judgments
    items = read_records(path, Judgment, GradeError,
                         f"no judgments at {path}: grade first (judge.grade({str(run)!r}, ...))")
    names = ["question_id", "mode", "turn", "model", "baseline", "judge_model", "status", "score", "winner",
             "rationale", "cost_usd"]
    types = {"turn": "Int64", "score": "Float64", "cost_usd": "Float64"}
    return frame([{k: getattr(j, k) for k in names} for j in items], {k: types.get(k, "String") for k in names},
                 GradeError)


__all__ = ["CurateResult", "DataPage", "GradeResult", "OverviewError", "ReportResult", "curate", "grade", "grade_async", "judgments",
           "report", "view"]
