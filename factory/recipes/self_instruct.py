"""The self-instruct recipe (Stanford Alpaca's method, after Wang et al.'s Self-Instruct).

Each request shows a few tasks and asks for `tasks_per_request` new ones, each an instruction, an
optional input and an output. The tasks shown are `seed_examples` seed tasks plus, once the run has
kept some, `generated_examples` of its own earlier tasks (Self-Instruct's 6 human + 2 machine mix;
Alpaca showed 3 seeds). Until enough generated tasks exist, seeds fill those places, so every
prompt shows the same number of tasks. Sampling is seeded by the request's index.

The answer is read as JSON (structured output, `{"tasks": [...]}`) or, on endpoints without it,
from Alpaca's text format ("1. Instruction: ... 1. Input: ... 1. Output: ..."). An answer cut short
(finish_reason "length") keeps its complete tasks; the cut one is rejected as truncated.
"""

from __future__ import annotations

import json
import random
from typing import Any

from factory.engine import ChatRequest, ChatResult
from factory.engine.structured import json_schema_format
from factory.recipes.base import (
    REASON_PARSE,
    REASON_TRUNCATED,
    Candidate,
    Context,
    Outcome,
    Recipe,
    StagePlan,
    ceil_div,
    cost_share,
    per_request_range,
    render_examples,
    sample_indices,
)
from factory.recipes.journal import JournalEntry
from factory.recipes.templates import Template, load_template
from factory.recipes.textparse import (
    ParseError,
    TaskDraft,
    extract_json,
    no_input,
    parse_task_list,
    salvage_array_items,
)
from factory.engine.tokens import get_estimator
from schemas import Example, Provenance, Rejected, SeedTask, iter_jsonl

STAGE = "self-instruct"

TASK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "instruction": {"type": "string"},
        "input": {"type": "string"},
        "output": {"type": "string"},
    },
    "required": ["instruction", "input", "output"],
    "additionalProperties": False,
}
TASKS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"tasks": {"type": "array", "items": TASK_SCHEMA}},
    "required": ["tasks"],
    "additionalProperties": False,
}


def seed_triple(seed: SeedTask) -> tuple[str, str, str]:
    """(instruction, input, output) of a seed task: its first instance, as Alpaca shows them."""
    first = seed.instances[0] if seed.instances else None
    return seed.instruction, (first.input if first else ""), (first.output if first else "")


class SelfInstruct(Recipe):
    name = "self-instruct"
    stages = (STAGE,)

    def __init__(self, ctx: Context, seeds: list[SeedTask]) -> None:
        super().__init__(ctx)
        if not seeds:
            raise ValueError("self-instruct needs at least one seed task")
        self.seeds = seeds
        self.template: Template = load_template("self_instruct", ctx.lang, ctx.settings.prompts).require(
            ["system", "user", "example", "format:json", "format:text"], {"user": ["examples", "format"]})
        ctx.gate.learn_prompts(self.template)  # its placeholders and labels, which a model may echo
        # Generated tasks that may be shown in later prompts: this recipe's kept examples.
        self.pool: list[tuple[str, tuple[str, str, str]]] = [
            (ex.id, (ex.instruction, ex.input, ex.output))
            for ex in iter_jsonl(ctx.outputs.examples_path, Example)
            if ex.provenance is not None and ex.provenance.recipe == self.name
        ]

    # -- prompts ----------------------------------------------------------------------------

    def render(self, index: int) -> tuple[list[dict[str, str]], dict[str, Any]]:
        s = self.ctx.settings
        rng = random.Random(f"{s.seed}/{STAGE}/{index}")
        machine = rng.sample(self.pool, min(s.generated_examples, len(self.pool)))
        n_seeds = min(len(self.seeds), s.seed_examples + s.generated_examples - len(machine))
        seeds = rng.sample(self.seeds, n_seeds)
        shown = [seed_triple(t) for t in seeds] + [task for _, task in machine]
        fmt = "format:json" if self.ctx.structured else "format:text"
        values = {"num_tasks": s.tasks_per_request}
        user = self.template.fill("user", {
            **values,
            "examples": render_examples(self.template, shown),
            "format": self.template.fill(fmt, values),
        })
        messages = [{"role": "system", "content": self.template.fill("system", values)},
                    {"role": "user", "content": user}]
        meta = {"seed_ids": [t.id for t in seeds], "example_ids": [i for i, _ in machine]}
        return messages, meta

    def params(self, entry: JournalEntry) -> dict[str, Any]:
        params = self.base_params(STAGE, entry.index)
        if self.ctx.structured:
            params["response_format"] = json_schema_format("new_tasks", TASKS_SCHEMA)
        return params

    # -- planning -----------------------------------------------------------------------------

    def restore_yields(self) -> None:
        y = self.ctx.stage_yield(STAGE)
        y.requests = self.ctx.journal.count(STAGE, processed=True)
        y.counts = self.ctx.journal.kept_counts(STAGE)
        y.kept = len(self.pool)
        y.candidates = y.kept + sum(1 for i in self.ctx.outputs.rejected_ids if i.startswith("si-"))

    def _kept_per_request(self) -> float:
        s = self.ctx.settings
        return self.ctx.stage_yield(STAGE).kept_per_request(s.tasks_per_request * s.assumed_yield)

    async def next_request(self) -> JournalEntry | None:
        need = self.ctx.need
        if need <= 0 or self.in_flight(STAGE) * self._kept_per_request() >= need:
            return None
        return self._plan_one()

    def _plan_one(self) -> JournalEntry:
        messages, meta = self.render(self.ctx.journal.next_index)
        return self.ctx.journal.plan(STAGE, messages, meta)

    def requests_needed(self) -> int:
        return ceil_div(self.ctx.need, self._kept_per_request())

    def sample_request(self, stage: str) -> ChatRequest | None:
        index = self.ctx.journal.next_index
        messages, meta = self.render(index)
        return self.request(JournalEntry(kind="planned", index=index, stage=STAGE, messages=messages, meta=meta))

    async def plan_batch(self, stage: str, limit: int | None = None) -> list[JournalEntry]:
        count = self.requests_needed()
        if limit is not None:
            count = min(count, limit)
        return [self._plan_one() for _ in range(count)]

    # -- results ------------------------------------------------------------------------------

    def handle(self, entry: JournalEntry, result: ChatResult) -> Outcome:
        ctx, call = self.ctx, result.call
        key = result.request.key
        outcome = Outcome()
        prefix = f"si-{key[:12]}"
        if call.content is None or not call.content.strip():
            why = call.error or "the answer is empty"
            self._write_whole(outcome, Rejected(id=f"{prefix}-parse", reason=REASON_PARSE, detail=why, request_key=key))
            return outcome
        truncated = call.finish_reason == "length"
        try:
            drafts = self._drafts(call.content, truncated)
        except ParseError as e:
            reason = REASON_TRUNCATED if truncated else REASON_PARSE
            self._write_whole(outcome, Rejected(id=f"{prefix}-parse", reason=reason, detail=str(e),
                                                text=call.content[:2000], request_key=key))
            return outcome
        share = cost_share(call.cost_usd, len(drafts))
        provenance = Provenance(recipe=self.name, model=call.model, seed_ids=entry.meta.get("seed_ids", []),
                                request_key=key, cost_usd=share, example_ids=entry.meta.get("example_ids", []))
        records: list[Example | Rejected] = []
        candidates: list[Candidate] = []
        for j, draft in enumerate(drafts):
            item_id = f"{prefix}-{j}"
            if ctx.outputs.known(item_id):
                continue  # written before a crash; the rerun processes the request again
            if isinstance(draft, ParseError):
                reason = REASON_TRUNCATED if truncated and j == len(drafts) - 1 else REASON_PARSE
                records.append(Rejected(id=item_id, reason=reason, detail=str(draft), request_key=key))
            else:
                cut = truncated and j == len(drafts) - 1 and not self.ctx.structured
                candidates.append(Candidate(item_id, draft.instruction, draft.input, draft.output,
                                            provenance, "length" if cut else "stop"))
        records += ctx.gate.admit_many(candidates)
        for record in records:
            outcome.count(record)
        kept = [r for r in records if isinstance(r, Example)]
        ctx.outputs.write(kept, [r for r in records if isinstance(r, Rejected)])
        self.pool.extend((ex.id, (ex.instruction, ex.input, ex.output)) for ex in kept)
        return outcome

    def _write_whole(self, outcome: Outcome, record: Rejected) -> None:
        if not self.ctx.outputs.known(record.id):
            outcome.count(record)
            self.ctx.outputs.write([], [record])

    def _drafts(self, content: str, truncated: bool) -> list[TaskDraft | ParseError]:
        if not self.ctx.structured:
            return parse_task_list(content)
        try:
            data = extract_json(content)
        except ParseError:
            if not truncated:
                raise
            # Cut short mid-JSON: keep the complete tasks, reject the one that was being written.
            items = salvage_array_items(content, "tasks")
            if not items:
                raise ParseError("the answer was cut short (finish_reason length) before its first complete task") from None
            return [*map(_draft_of, items), ParseError("the last task was cut short (finish_reason length)")]
        items = data.get("tasks") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ParseError('expected {"tasks": [...]}, got ' + type(data).__name__ + " without a tasks list")
        if not items:
            raise ParseError("the tasks list is empty")
        return [_draft_of(item) for item in items]

    # -- dry run ------------------------------------------------------------------------------

    def dry_run(self) -> list[StagePlan]:
        planned = self.requests_needed()
        start = self.ctx.journal.next_index
        requests = []
        for i in sample_indices(planned):
            messages, meta = self.render(start + i)
            entry = JournalEntry(kind="planned", index=start + i, stage=STAGE, messages=messages, meta=meta)
            requests.append(self.request(entry))
        est = get_estimator(self.ctx.model)
        per_task = sum(est.count(json.dumps(dict(zip(("instruction", "input", "output"), seed_triple(t))),
                                            ensure_ascii=False)) for t in self.seeds) / len(self.seeds)
        expected = min(float(self.ctx.settings.max_tokens(STAGE)), per_task * self.ctx.settings.tasks_per_request + 10)
        s, y = self.ctx.settings, self.ctx.stage_yield(STAGE)
        low, high = per_request_range(y, s.tasks_per_request, s.yield_range)
        basis = (f"{y.kept} kept from {y.requests} requests measured in this run folder" if y.requests
                 else f"assumed_yield {s.assumed_yield:.0%} of {s.tasks_per_request} tasks "
                      "asked per request (a default: nothing measured in this run folder yet)")
        span = (f"{y.kept} of {y.candidates} candidates kept from {y.requests} requests, and the spread of so few"
                if y.requests
                else f"assumed yields {s.yield_range[0]:.0%} to {s.yield_range[1]:.0%}: a default range")
        return [StagePlan(
            STAGE, requests, planned,
            [f"{self._kept_per_request():.2f} kept examples per request ({basis})",
             f"between {low:.2f} and {high:.2f} kept per request ({span})",
             f"expected output: {per_task:.0f} tokens per task, the mean size of the seed tasks"],
            expected_output_tokens=expected,
            planned_range=(ceil_div(self.ctx.need, high), ceil_div(self.ctx.need, low)),
        )]


def _draft_of(item: Any) -> TaskDraft | ParseError:
    if not isinstance(item, dict):
        return ParseError(f"a task is a {type(item).__name__}, not an object")
    instruction, inp, output = (item.get(k) for k in ("instruction", "input", "output"))
    # An empty string is a task with an empty field: the gate rejects it as `empty`.
    if not isinstance(instruction, str):
        return ParseError("a task has no instruction")
    if not isinstance(output, str):
        return ParseError("a task has no output")
    inp = inp if isinstance(inp, str) and not no_input(inp) else ""
    return TaskDraft(instruction.strip(), inp.strip(), output.strip())
