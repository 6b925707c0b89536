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
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from factory.batch import (
    BatchSettings,
    add_batch_arguments,
    batch_client,
    batch_settings_from_args,
    run_batch,
)
from factory.engine import ChatRequest, ChatResult, Engine
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
from judge.parse import Unparsed
from judge.plan import MODES, GradingItem, Outcome, plan_items
from judge.prompts import PromptError
from judge.verdicts import judgment_key
from schemas import Answer, JsonlError, JsonlWriter, Judgment, Question, read_jsonl
from schemas.evalset import EvalSetError, load_questions

STAGE = "judge"
SECTION = "judge"
ANSWERS_FILE = Path("eval") / "answers.jsonl"
JUDGMENTS_FILE = Path("eval") / "judgments.jsonl"


class GradeError(FactoryError):
    """An input or a setting the user must fix; nothing was sent."""


# --------------------------------------------------------------------------------------------
# Settings


class JudgeSettings(BaseModel):
    """What to grade and how (the `[judge]` section of a settings file). The engine's settings
    (endpoint, limits, budget) are apart: `[engine]` and the engine's flags."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    mode: Literal["single", "pair", "reference"] = Field(description="single 1-10, pair A/B/tie, reference-guided 1-10")
    judge_model: str = Field(min_length=1, description="the judge, e.g. gpt-4o")
    model: str | None = Field(default=None, description="label of the answers to grade; None: the only label")
    baseline: str | None = Field(default=None, description="pair mode: label of the answers to compare against")
    questions: list[Path] = Field(default_factory=list, description="question files; empty: those the answers came from")
    structured: Literal["auto", "yes", "no"] = Field(
        default="auto", description="json_schema output: yes, no (parse text), auto (unless the judge model lacks it)")
    retries: int = Field(default=2, ge=0, le=10, description="more tries for a reply without a readable verdict")
    lang: Literal["en", "ko"] | None = Field(default=None, description="judge prompt language; None: the question's")
    pair_reference: bool = Field(default=True, description="pair mode: show the reference for math, reasoning, coding")
    max_tokens: int = Field(default=512, ge=16, le=32768, description="max_tokens of a judge reply")
    batch: bool = Field(default=False, description="through the Batch API (half price, within 24 h)")

    @model_validator(mode="before")
    @classmethod
    def _drop_run_record(cls, data: Any) -> Any:
        # A run's config.toml also records [judge.engine] and [judge.batch_api] (see ResolvedJudge);
        # they describe that run and are not settings of this table: the engine reads [engine].
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in ("engine", "batch_api")}
        return data

    @model_validator(mode="after")
    def _baseline_fits_mode(self) -> JudgeSettings:
        if self.mode == "pair" and not self.baseline:
            raise ValueError("mode pair needs --baseline LABEL: the answers to compare against")
        if self.mode != "pair" and self.baseline:
            raise ValueError(f"--baseline is for mode pair; mode {self.mode} grades one model's answers alone")
        if self.baseline is not None and self.baseline == self.model:
            raise ValueError(f"--model and --baseline are both {self.model!r}; compare two different labels")
        return self


class ResolvedJudge(JudgeSettings):
    """What `RUN/config.toml` [judge] records: the settings as resolved, and the engine's."""

    engine: EngineSettings
    batch_api: BatchSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_run_record(cls, data: Any) -> Any:
        return data  # here the record is the point (overrides JudgeSettings', which drops it)


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


# --------------------------------------------------------------------------------------------
# Inputs: answers, question files, labels


@dataclass
class Inputs:
    questions: list[Question]
    answers: list[Answer]
    label: str
    question_files: list[Path]


def _recorded_question_files(run: Path, labels: Sequence[str]) -> list[Path]:
    """The question files the answer commands recorded for `labels` ([answer.LABEL].questions)."""
    try:
        doc = tomllib.loads((run / "config.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return []
    table = doc.get("answer")
    files: list[Path] = []
    for label in labels:
        entry = table.get(label) if isinstance(table, dict) else None
        value = entry.get("questions") if isinstance(entry, dict) else None
        for item in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
            if isinstance(item, str) and Path(item) not in files:
                files.append(Path(item))
    return files


def load_inputs(run: Path, settings: JudgeSettings) -> Inputs:
    """Answers, labels and questions, checked; every problem is one GradeError line."""
    path = run / ANSWERS_FILE
    if not path.is_file():
        raise GradeError(f"no answers at {path}: make them first with `python -m trainer answer --run {run} ...` "
                         f"or `python -m judge answer --run {run} ...`")
    try:
        answers = read_jsonl(path, Answer)
    except JsonlError as e:
        raise GradeError(f"{e}; fix or move the file, then rerun") from None
    labels = sorted({a.model for a in answers})
    if not labels:
        raise GradeError(f"{path} holds no answers; make them first (python -m trainer answer / python -m judge answer)")
    label = settings.model
    if label is None:
        candidates = [x for x in labels if x != settings.baseline]
        if len(candidates) != 1:
            raise GradeError(f"{path} has answers of {len(labels)} models ({', '.join(labels)}): "
                             "say which to grade with --model LABEL")
        label = candidates[0]
    if label not in labels:
        raise GradeError(f"no answers labelled {label!r} in {path}; labels there: {', '.join(labels)}")
    if settings.baseline is not None and settings.baseline not in labels:
        raise GradeError(f"the baseline {settings.baseline!r} has no answers in {path}; labels there: "
                         f"{', '.join(labels)} (answer the questions with the baseline model first)")
    files = list(settings.questions)
    if not files:
        files = _recorded_question_files(run, [label] + ([settings.baseline] if settings.baseline else []))
        if not files:
            raise GradeError(f"no question file: pass --questions FILE (the file {label!r} answered; "
                             f"{run}/config.toml records none)")
    try:
        questions = load_questions(files)
    except EvalSetError as e:
        raise GradeError(str(e)) from None
    ids = {q.question_id for q in questions}
    if not any(a.model == label and a.question_id in ids for a in answers):
        raise GradeError(f"none of {label!r}'s answers is to a question in {', '.join(map(str, files))}; "
                         "pass the question file the answers were made from")
    return Inputs(questions, answers, label, files)


# --------------------------------------------------------------------------------------------
# What is left to grade


@dataclass
class Todo:
    items: list[GradingItem]
    first_attempt: dict[tuple[object, ...], int]  # item key -> attempt number to start at
    already_scored: int


def attempts_used(judgment: Judgment) -> int:
    """How many attempt numbers an unscored judgment used (written by this command as `attempts`)."""
    value = (judgment.model_extra or {}).get("attempts")
    return value if isinstance(value, int) and value >= 0 else 0


def left_to_grade(items: Sequence[GradingItem], done: Sequence[Judgment]) -> Todo:
    """Items without a scored judgment; an item recorded unscored starts after its used attempts."""
    scored = {judgment_key(j) for j in done if j.status == "scored"}
    first: dict[tuple[object, ...], int] = {}
    for j in done:
        if j.status == "unscored":
            key = judgment_key(j)
            first[key] = max(first.get(key, 0), attempts_used(j))
    todo = [i for i in items if i.key not in scored]
    return Todo(todo, {i.key: first.get(i.key, 0) for i in todo}, len(items) - len(todo))


# --------------------------------------------------------------------------------------------
# The grading rounds: what to send, and what the replies make of each item


@dataclass
class _Item:
    item: GradingItem
    first_attempt: int
    outcomes: list[Outcome | None]
    keys: list[str] = field(default_factory=list)  # every request, in the order asked (round, then order)
    costs: dict[str, float | None] = field(default_factory=dict)  # of each answered request
    waiting: int = 0  # requests of the current round not answered yet
    rounds: int = 0  # attempt numbers used in this run
    state: Literal["open", "written", "failed", "unfinished"] = "open"
    error: str = ""

    def needs(self) -> list[int]:
        """The orders still without a readable verdict."""
        return [o for o, out in enumerate(self.outcomes) if out is None or isinstance(out, Unparsed)]


@dataclass
class GradeCounts:
    planned: int = 0
    already_scored: int = 0
    scored: int = 0
    unscored: int = 0
    failed: int = 0  # a request failed at the API: left ungraded, a rerun tries again
    unfinished: int = 0  # not answered: the run stopped (budget, Ctrl-C) or batches still run
    requests: int = 0  # grading requests this run asked for (cached ones included)
    cached: int = 0  # answered from the ledger: not paid again
    cost_usd: float | None = 0.0  # paid in this run; None: a price is unknown
    stopped_reason: str | None = None  # "budget", "interrupted", "batches pending"
    failures: Counter[str] = field(default_factory=Counter)


class Grading:
    """The state of one grading run: builds each round's requests, reads each result (serially,
    from the engine's `on_result`), and writes an item's judgment the moment it is final."""

    def __init__(self, todo: Todo, writer: JsonlWriter, *, structured: bool, retries: int, max_tokens: int) -> None:
        self.items = [_Item(i, todo.first_attempt[i.key], [None] * i.orders) for i in todo.items]
        self.writer = writer
        self.structured = structured
        self.retries = retries
        self.max_tokens = max_tokens
        self.counts = GradeCounts()
        self._slots: dict[str, list[tuple[_Item, int]]] = {}
        self._round = 0

    def round_requests(self, round_: int) -> list[ChatRequest]:
        """The requests of attempt round `round_`: every open item's orders without a verdict."""
        self._round = round_
        self._slots = {}
        requests: list[ChatRequest] = []
        for it in self.items:
            if it.state != "open":
                continue
            it.rounds = round_ + 1
            for order in it.needs():
                prompt = it.item.prompt(order, it.first_attempt + round_)
                request = ChatRequest(STAGE, it.item.judge_model, prompt.messages,
                                      prompt.params(structured=self.structured, max_tokens=self.max_tokens))
                slots = self._slots.setdefault(request.key, [])
                if not slots:
                    requests.append(request)
                slots.append((it, order))  # the same request twice (a pair of equal answers) is sent once
                if request.key not in it.keys:
                    it.keys.append(request.key)
                it.waiting += 1
        self.counts.requests += len(requests)
        return requests

    def on_result(self, result: ChatResult) -> None:
        if result.cached:
            self.counts.cached += 1
        for it, order in self._slots.pop(result.request.key, []):
            it.costs[result.request.key] = result.call.cost_usd
            it.waiting -= 1
            if result.ok and result.content is not None:
                it.outcomes[order] = it.item.parse(result.content)
            elif not it.error:
                it.error = result.call.error or "no text in the reply"
            if it.waiting == 0:
                self._settle(it)

    def _settle(self, it: _Item) -> None:
        """An item whose requests of this round are all answered: final, or open for the next round."""
        if it.error:
            it.state = "failed"
            self.counts.failed += 1
            self.counts.failures[it.error[:120]] += 1
        elif not it.needs() or self._round >= self.retries:
            self._write(it)

    def _write(self, it: _Item) -> None:
        outcomes = [o if o is not None else Unparsed("not asked", "") for o in it.outcomes]
        cost: float | None = 0.0
        for c in it.costs.values():
            cost = None if c is None or cost is None else cost + c
        judgment = it.item.judgment(outcomes, request_keys=it.keys, cost_usd=cost)
        # The attempt numbers used so far: a rerun grading an unscored item starts after them.
        judgment = Judgment.model_validate({**judgment.model_dump(), "attempts": it.first_attempt + it.rounds})
        self.writer.append(judgment)
        it.state = "written"
        if judgment.status == "scored":
            self.counts.scored += 1
        else:
            self.counts.unscored += 1

    def end_round(self) -> None:
        """Items with requests the run never answered (it stopped) are left for a rerun."""
        for it in self.items:
            if it.state == "open" and it.waiting > 0:
                it.state = "unfinished"
                it.waiting = 0
        self._slots = {}

    def finish(self) -> GradeCounts:
        self.counts.unfinished = sum(1 for it in self.items if it.state in ("open", "unfinished"))
        return self.counts

    def add_cost(self, cost: float | None) -> None:
        if cost is None or self.counts.cost_usd is None:
            self.counts.cost_usd = None
        else:
            self.counts.cost_usd += cost


def check_prompts(items: Sequence[GradingItem], first_attempt: dict[tuple[object, ...], int]) -> None:
    """Build every first prompt now, so a prompt that cannot be built fails before any request."""
    for item in items:
        for order in range(item.orders):
            try:
                item.prompt(order, first_attempt[item.key])
            except PromptError as e:
                raise GradeError(str(e)) from None


async def _grade_online(grading: Grading, engine: Engine) -> None:
    for round_ in range(grading.retries + 1):
        requests = grading.round_requests(round_)
        if not requests:
            break
        stats = await engine.run(requests, grading.on_result, total=len(requests))
        grading.add_cost(stats.cost_usd)
        grading.end_round()
        if stats.stopped_reason:
            grading.counts.stopped_reason = stats.stopped_reason
            break


async def _grade_batch(grading: Grading, ledger: Ledger, settings: EngineSettings, batch: BatchSettings,
                       http_client: httpx.AsyncClient | None, api_key: str | None, err: TextIO) -> None:
    async with batch_client(settings, api_key=api_key, http_client=http_client) as client:
        for round_ in range(grading.retries + 1):
            requests = grading.round_requests(round_)
            if not requests:
                break
            stats = await run_batch(requests, grading.on_result, ledger=ledger, settings=settings, client=client,
                                    batch=batch, progress=err if settings.progress else None)
            grading.add_cost(stats.cost_usd)
            grading.end_round()
            if stats.pending:
                grading.counts.stopped_reason = "batches pending"
                break
            if stats.stopped_reason:
                grading.counts.stopped_reason = stats.stopped_reason
                break


# --------------------------------------------------------------------------------------------
# The run


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
                anyio.run(_grade_online, grading, engine)
            else:
                anyio.run(_grade_batch, grading, ledger, engine_settings, batch or BatchSettings(), http_client,
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
