"""What every recipe shares: the run's context, the gate every produced example passes (filters,
then near-duplicate check), the yield measurements that size and stop a run, and the Recipe
interface the driver (driver.py) runs.

A recipe turns settings and seeds into requests (`next_request` online, `plan_batch` for the
Batch API; each planned request is journaled first), and answers into examples (`handle`).
It never sends anything itself: the driver gives its requests to the engine (online) or to the
Batch API path, and hands each result back, so both paths parse, filter and dedup the same way.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import anyio

from factory.quality import filters, replies
from factory.quality import Deduper, example_text, rejection
from factory.engine import ChatRequest, ChatResult
from factory.quality.filters import FilterSettings
from factory.recipes.journal import Journal, JournalEntry
from factory.recipes.outputs import Outputs
from factory.recipes.settings import GenerateSettings
from factory.recipes.templates import Template
from schemas import Example, Provenance, Rejected, RunFolder

log = logging.getLogger(__name__)

# Reasons of rejections made here; the others are filters.py's names and dedup's.
REASON_PARSE = filters.REASON_PARSE
REASON_TRUNCATED = filters.REASON_TRUNCATED
REASON_FAILED = "request_failed"  # the yield window's name for a request that got no answer


# --------------------------------------------------------------------------------------------
# Structured output


# --------------------------------------------------------------------------------------------
# Yield: how many kept items a request gives, to size the run and to notice a collapse


@dataclass
class StageYield:
    """Per stage: requests processed, candidates produced, items kept."""

    requests: int = 0
    candidates: int = 0
    kept: int = 0
    counts: list[int] = field(default_factory=list)  # kept items of each request, where known

    def kept_per_request(self, prior: float, weight: float = 2.0) -> float:
        """Mean kept items per request, pulled towards `prior` while few requests are measured."""
        return (self.kept + prior * weight) / (self.requests + weight)

    def share_kept(self, prior: float, weight: float = 5.0) -> float:
        """Kept share of the candidates, pulled towards `prior` while few are measured."""
        return (self.kept + prior * weight) / (self.candidates + weight)


# How sure the dry run's range is of a measured share: z = 2 (about 95 %).
RANGE_Z = 2.0


def share_range(kept: int, candidates: int, prior: tuple[float, float]) -> tuple[float, float]:
    """The share of candidates kept, low and high: the Wilson score interval of what this run folder
    measured (wide while little is measured), or `prior` (the assumed range) before anything is."""
    if candidates <= 0:
        return prior
    z, n, p = RANGE_Z, candidates, kept / candidates
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(centre - half, 1e-3), min(centre + half, 1.0)


def per_request_range(y: StageYield, asked: float, prior: tuple[float, float]) -> tuple[float, float]:
    """Kept items per request, low and high: the kept share's range times the candidates a request
    gives (as measured, else as many as it asks for), widened to the range of the mean of the
    measured per-request counts. Replies differ in how many items they hold (one to five tasks),
    and a small sample of requests can sit well away from the long-run mean."""
    per_request = y.candidates / y.requests if y.requests else asked
    low, high = share_range(y.kept, y.candidates, prior)
    low, high = low * per_request, high * per_request
    if len(y.counts) >= 2:
        n = len(y.counts)
        mean = sum(y.counts) / n
        sd = math.sqrt(sum((c - mean) ** 2 for c in y.counts) / (n - 1))
        half = RANGE_Z * sd / math.sqrt(n)
        low, high = min(low, max(mean - half, 1e-3)), max(high, mean + half)
    return low, high


@dataclass
class _WindowItem:
    kept: int
    candidates: int
    reasons: Counter[str]


class YieldWindow:
    """The last `size` processed requests: a run whose recent requests keep almost nothing stops."""

    def __init__(self, size: int, min_yield: float) -> None:
        self.size, self.min_yield = size, min_yield
        self._items: deque[_WindowItem] = deque(maxlen=size)

    def add(self, kept: int, candidates: int, reasons: Counter[str]) -> None:
        self._items.append(_WindowItem(kept, max(candidates, 1), reasons))

    def collapsed(self) -> str | None:
        """A sentence saying why the run should stop, or None."""
        if len(self._items) < self.size or self.min_yield <= 0:
            return None
        kept = sum(i.kept for i in self._items)
        candidates = sum(i.candidates for i in self._items)
        if kept / candidates >= self.min_yield:
            return None
        reasons: Counter[str] = Counter()
        for i in self._items:
            reasons.update(i.reasons)
        top = ", ".join(f"{r} {c}" for r, c in reasons.most_common(5)) or "no reasons recorded"
        return (f"the yield collapsed: the last {self.size} requests kept {kept} of {candidates} candidates "
                f"({kept / candidates:.1%} < min_yield {self.min_yield:.0%}); rejected: {top}")


# --------------------------------------------------------------------------------------------
# The context a recipe works in


@dataclass
class Context:
    settings: GenerateSettings
    model: str
    lang: str
    structured: bool
    folder: RunFolder  # the run: its kept examples, the journal and each recipe's own state
    journal: Journal
    outputs: Outputs
    deduper: Deduper
    gate: Gate
    dry_run: bool = False
    window: YieldWindow = field(init=False)
    yields: dict[str, StageYield] = field(default_factory=dict)
    active: dict[int, JournalEntry] = field(default_factory=dict)  # handed out, result not back yet
    stop_reason: str | None = None
    changed: anyio.Event | None = None  # set when a result was processed (the online driver waits on it)

    def __post_init__(self) -> None:
        self.window = YieldWindow(self.settings.yield_window, self.settings.min_yield)

    def in_flight(self, stage: str) -> list[JournalEntry]:
        return [e for e in self.active.values() if e.stage == stage]

    def stage_yield(self, stage: str) -> StageYield:
        return self.yields.setdefault(stage, StageYield())

    @property
    def need(self) -> int:
        """Examples still to keep."""
        return max(0, self.settings.n - self.outputs.kept)

    def notify(self) -> None:
        if self.changed is not None:
            self.changed.set()
            self.changed = anyio.Event()


# --------------------------------------------------------------------------------------------
# The gate: filters, then the near-duplicate check, for every produced example


@dataclass
class Candidate:
    """One produced example before the gate."""

    id: str
    instruction: str
    input: str
    output: str
    provenance: Provenance
    finish_reason: str = "stop"


class Gate:
    """filters.py's checks, then the deduper (seeds, eval questions and every kept example)."""

    def __init__(self, filter_settings: FilterSettings, deduper: Deduper, lang: str) -> None:
        # A Korean run keeps Korean text unless the [filters] section says otherwise
        # (`disabled = ["language"]` switches the check off).
        self.filter_settings = filter_settings if filter_settings.lang else filter_settings.model_copy(update={"lang": lang})
        # A question alone has no answer to be cut short or to decline: those filters do not apply.
        # (nor to repeat: the probe's output is the question itself)
        off = sorted({*self.filter_settings.disabled, filters.REASON_TRUNCATED, filters.REASON_REFUSAL, filters.REASON_ECHO})
        self.question_settings = self.filter_settings.model_copy(update={"disabled": off})
        self.deduper = deduper
        self.lang = lang
        # The placeholders and labels a model may echo: the shipped templates', and the run's own
        # (edited copies from --prompts) once the recipe shows them (`learn_prompts`).
        self.markers = replies.default_markers()
        self.repairs = 0  # fields tidied (a leading label stripped, wrapping quotes removed)

    def learn_prompts(self, *templates: Template) -> None:
        self.markers = self.markers | replies.markers_of(t.sections for t in templates)

    def admit_many(self, candidates: list[Candidate]) -> list[Example | Rejected]:
        """For each candidate, in order: the kept example, or the record of why it was dropped (a
        filter's name, or a duplicate of a seed, an eval question or an earlier kept example; a
        later candidate is checked against the earlier ones). The near-duplicate check runs once
        for the whole list."""
        out: list[Example | Rejected | None] = []
        survivors: list[tuple[int, Example]] = []
        for c in candidates:
            key = c.provenance.request_key
            (instruction, input_, output), repaired = replies.tidy(c.instruction, c.input, c.output, self.markers)
            if repaired:
                self.repairs += 1
                log.debug("%s: %s", c.id, "; ".join(repaired))
            empty = replies.empty(instruction, output)
            if empty and self.filter_settings.enabled(filters.REASON_EMPTY):
                out.append(Rejected(id=c.id, reason=filters.REASON_EMPTY, detail=empty, request_key=key,
                                    text=c.instruction + "\n\n" + c.output))
                continue
            if not instruction.strip() or not output.strip():
                part = "instruction" if not instruction.strip() else "output"
                out.append(filters.parse_rejection(c.id, c.instruction + "\n\n" + c.output, f"empty {part}", key))
                continue
            bad = filters.encoding_rejection(c.id, {"instruction": instruction, "input": input_, "output": output}, key)
            if bad is not None:
                out.append(bad)
                continue
            example = Example(id=c.id, instruction=instruction.strip(), input=input_.strip(),
                              output=output.strip(), lang=self.lang, provenance=c.provenance)
            refused = filters.check(example, c.finish_reason, self.filter_settings, self.markers)
            out.append(refused.record(example, key) if refused is not None else None)
            if refused is None:
                survivors.append((len(out) - 1, example))
        field_ = self.deduper.settings.text
        texts = [(ex.id, example_text(ex, field_)) for _, ex in survivors]
        for (slot, example), (_, text), verdict in zip(survivors, texts, self.deduper.iter_check_and_add(texts)):
            key = example.provenance.request_key if example.provenance else ""
            out[slot] = rejection(example.id, verdict, text=text, request_key=key) if verdict.is_dup else example
        return [r for r in out if r is not None]

    def check_turn(self, tid: str, question: str, answer: str, finish_reason: str | None,
                   request_key: str) -> tuple[str, str] | Rejected:
        """A later turn of a conversation: tidied and filtered as an example is, but not checked for
        near-duplicates on its own (follow-ups such as "Can you give an example?" recur across
        conversations by nature; the whole conversation is checked instead)."""
        (question, _, answer), _ = replies.tidy(question, "", answer, self.markers)
        refused_question = self.check_question(tid, question, request_key)
        if refused_question is not None:
            return refused_question
        if not answer.strip():
            return Rejected(id=tid, reason=filters.REASON_EMPTY if self.filter_settings.enabled(filters.REASON_EMPTY)
                            else REASON_PARSE, detail="the answer is empty", text=question, request_key=request_key)
        probe = Example(id=tid, instruction=question.strip(), output=answer.strip(), lang=self.lang)
        refused = filters.check(probe, finish_reason, self.filter_settings, self.markers)
        if refused is not None:
            return refused.record(probe, request_key)
        return question.strip(), answer.strip()

    def check_question(self, qid: str, text: str, request_key: str) -> Rejected | None:
        """The filters that apply to a question alone: empty, length, tasks a text model cannot do, language."""
        if not text.strip():
            # A reply that parsed, with an empty question in it (a grammar allows an empty string);
            # with the empty filter off it still cannot be kept: nothing to answer.
            reason = filters.REASON_EMPTY if self.filter_settings.enabled(filters.REASON_EMPTY) else REASON_PARSE
            return Rejected(id=qid, reason=reason, detail="the question is empty", text=text, request_key=request_key)
        if bad := filters.encoding_rejection(qid, {"question": text}, request_key):
            return bad
        probe = Example(id=qid, instruction=text, output=text, lang=self.lang)
        refused = filters.check(probe, None, self.question_settings, self.markers)
        if refused is None:
            return None
        return Rejected(id=qid, reason=refused.reason, detail=refused.detail, text=text, request_key=request_key)


# --------------------------------------------------------------------------------------------
# The recipe interface


@dataclass
class Outcome:
    """What handling one result produced (for the yield measurements)."""

    kept: int = 0
    candidates: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def count(self, record: Example | Rejected) -> None:
        self.candidates += 1
        if isinstance(record, Example):
            self.kept += 1
        else:
            self.reasons[record.reason] += 1


@dataclass(frozen=True)
class StagePlan:
    """The dry run's view of one stage: how many requests, and prompts rendered for each."""

    stage: str
    requests: list[ChatRequest]
    planned: int  # requests the stage needs; `requests` renders all of them, or an even sample
    assumptions: list[str]
    expected_output_tokens: float | None = None  # per request, when it can be said from real text
    # Requests at the high and at the low end of the yield's range (`planned`: at the expected one).
    planned_range: tuple[int, int] | None = None


class Recipe:
    name: str = ""
    stages: tuple[str, ...] = ()

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # -- planning ---------------------------------------------------------------------------
    async def next_request(self) -> JournalEntry | None:
        """Online: plan (and journal) one more request if the run needs one now, else None."""
        raise NotImplementedError

    async def plan_batch(self, stage: str, limit: int | None = None) -> list[JournalEntry]:
        """Batch API: plan (and journal) the requests of `stage` for the next round (`limit`: at
        most this many, what the budget allows)."""
        raise NotImplementedError

    def sample_request(self, stage: str) -> ChatRequest | None:
        """A request of `stage` as the next one would be, rendered without planning it (to size a
        batch under the budget). None: it cannot be rendered yet."""
        raise NotImplementedError

    def request(self, entry: JournalEntry) -> ChatRequest:
        """The chat request of a journal entry; the entry rides along in `meta`."""
        return ChatRequest(entry.stage, self.ctx.model, entry.messages, self.params(entry), {"entry": entry})

    def params(self, entry: JournalEntry) -> dict[str, Any]:
        raise NotImplementedError

    def base_params(self, stage: str, index: int) -> dict[str, Any]:
        s = self.ctx.settings
        params: dict[str, Any] = {"max_tokens": s.max_tokens(stage), "temperature": s.temperature,
                                  # A distinct seed per request: two requests never share a key, and
                                  # identical prompts (a keyword's second round) still differ.
                                  "seed": s.seed * 1_000_003 + index}
        if s.top_p is not None:
            params["top_p"] = s.top_p
        return params

    # -- results ----------------------------------------------------------------------------
    def handle(self, entry: JournalEntry, result: ChatResult) -> Outcome:
        raise NotImplementedError

    def dry_run(self) -> list[StagePlan]:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release what the recipe holds (the Naver client)."""

    def restore_yields(self) -> None:
        """Set `ctx.yields` from what earlier runs of this folder processed (planning and dry runs
        then use measured yields instead of `assumed_yield`)."""

    # -- helpers ----------------------------------------------------------------------------
    def in_flight(self, stage: str) -> int:
        return len(self.ctx.in_flight(stage))


def cost_share(cost: float | None, parts: int) -> float | None:
    return None if cost is None or parts <= 0 else cost / parts


def ceil_div(a: float, b: float) -> int:
    return max(0, math.ceil(a / b)) if b > 0 else 0


# The dry run renders at most this many prompts per stage (spread over the run) and scales up.
DRY_RUN_SAMPLE = 200


def sample_indices(count: int, cap: int = DRY_RUN_SAMPLE) -> list[int]:
    """All of range(count), or `cap` of them evenly spread."""
    if count <= cap:
        return list(range(count))
    return sorted({round(i * (count - 1) / (cap - 1)) for i in range(cap)})


def render_examples(template: Template, tasks: list[tuple[str, str, str]]) -> str:
    """The `example` section once per (instruction, input, output), numbered from 1."""
    no_input = template.section("no_input") if template.has("no_input") else ""
    return "\n\n".join(
        template.fill("example", {"number": i, "instruction": ins, "input": inp or no_input, "output": out})
        for i, (ins, inp, out) in enumerate(tasks, start=1)
    )
