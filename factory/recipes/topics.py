"""The topics recipe (the Korean tutorial's method): keywords -> questions -> answers.

Two stages, each its own ledger stage:

1. "questions": a request shows `keywords_per_request` keywords and asks for
   `questions_per_keyword` questions about each. Keywords go round in a seeded shuffled order;
   when a keyword comes round again, a few of its earlier questions are shown so that the model
   writes new ones. Every question passes the filters and the near-duplicate check (against
   every kept question and the evaluation questions) BEFORE any answer is paid for; kept ones
   go to `runs/NAME/generate/questions.jsonl`.
2. "answers": a request asks for the answers to `answers_per_request` kept questions, optionally
   with search snippets from Naver (naver.py) in the prompt. Each answer becomes an example
   (instruction = the question) and passes the gate like any other.

The online driver interleaves the stages (answers are asked as soon as enough questions are
kept); the Batch API path runs them stage by stage.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from typing import Any

from pydantic import BaseModel, ConfigDict

from factory.quality import Deduper, rejection
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
    share_range,
    sample_indices,
)
from factory.recipes.journal import JournalEntry
from factory.recipes.naver import NaverQuotaExceeded, NaverSearch, NaverSettings, Snippet
from factory.recipes.templates import Template, load_template
from factory.recipes.textparse import (
    ParseError,
    extract_json,
    parse_numbered_answers,
    parse_question_list,
    json_or_salvage,
    salvage_array_items,
)
from factory.engine.tokens import get_estimator
from schemas import Example, JsonlWriter, Provenance, Rejected, iter_jsonl

log = logging.getLogger(__name__)

QUESTIONS = "questions"
ANSWERS = "answers"

# Dry run only: answer prompts are rendered with placeholder questions of this many characters
# (no question exists before the run), and grounding snippets of this many characters each.
PLACEHOLDER_QUESTION_CHARS = 60
PLACEHOLDER_SNIPPET_CHARS = 160


class KeptQuestion(BaseModel):
    """A question that passed the filters and the dedup: it will be answered."""

    model_config = ConfigDict(extra="allow")  # a recipe's own (evol: the evolution kind)

    id: str
    text: str
    keyword: str
    request_key: str
    cost_usd: float | None = None  # its share of the questions request's cost


def questions_schema(keywords: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"questions": {"type": "array", "items": {
            "type": "object",
            "properties": {"keyword": {"type": "string", "enum": keywords}, "question": {"type": "string"}},
            "required": ["keyword", "question"],
            "additionalProperties": False,
        }}},
        "required": ["questions"],
        "additionalProperties": False,
    }


def answers_schema(count: int) -> dict[str, Any]:
    # One named field per question: the answer to question 2 cannot land in question 3's place.
    keys = [f"answer_{i}" for i in range(1, count + 1)]
    return {"type": "object", "properties": {k: {"type": "string"} for k in keys},
            "required": keys, "additionalProperties": False}


class Topics(Recipe):
    name = "topics"
    q_stage = QUESTIONS  # the first stage's name (the evol recipe's is "evolve")
    stages = (QUESTIONS, ANSWERS)

    def __init__(self, ctx: Context, keywords: list[str], *, naver: NaverSearch | None = None,
                 naver_settings: NaverSettings | None = None, question_deduper: Deduper | None = None) -> None:
        super().__init__(ctx)
        if not keywords:
            raise ValueError("topics needs at least one keyword")
        self.keywords = list(dict.fromkeys(keywords))
        self.naver = naver
        self.naver_settings = naver_settings or NaverSettings()
        prompts, lang = ctx.settings.prompts, ctx.lang
        self.q_template: Template = self.question_template()
        self.a_template: Template = load_template("answers", lang, prompts).require(
            ["system", "user", "grounding", "format:json", "format:text"],
            {"user": ["questions", "format", "grounding"], "grounding": ["snippets"]})
        ctx.gate.learn_prompts(self.q_template, self.a_template)  # placeholders and labels a model may echo
        order = list(self.keywords)
        random.Random(f"{ctx.settings.seed}/keywords").shuffle(order)
        self.order = order

        # Kept questions: restored from the run folder; the dedup index holds them and the eval set.
        self.questions_path = ctx.folder.questions
        self.kept: dict[str, KeptQuestion] = {q.id: q for q in iter_jsonl(self.questions_path, KeptQuestion)}
        self.by_keyword: dict[str, list[str]] = defaultdict(list)
        for q in self.kept.values():
            self.by_keyword[q.keyword].append(q.text)
        self.qdedup = question_deduper if question_deduper is not None else Deduper(ctx.deduper.settings)
        self.qdedup.add_many(((q.id, q.text) for q in self.kept.values()), kind="kept")
        assigned = {q["id"] for e in ctx.journal.entries(ANSWERS) for q in e.meta.get("questions", [])}
        self.unassigned: list[str] = [qid for qid in self.kept if qid not in assigned]
        self._writer = None if ctx.dry_run else JsonlWriter(self.questions_path)

    def question_template(self) -> Template:
        """The first stage's prompt template, checked."""
        return load_template("questions", self.ctx.lang, self.ctx.settings.prompts).require(
            ["system", "user", "keyword", "avoid", "format:json", "format:text"],
            {"user": ["keywords", "format"], "keyword": ["keyword"], "avoid": ["questions"]})

    def asked_per_request(self) -> int:
        """Items a first-stage request asks for."""
        s = self.ctx.settings
        return min(s.keywords_per_request, len(self.keywords)) * s.questions_per_keyword

    def provenance_extra(self, question: KeptQuestion) -> dict[str, Any]:
        """More provenance of an example made from `question` (none here)."""
        return {}

    async def aclose(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self.naver is not None:
            await self.naver.aclose()

    # -- yields -------------------------------------------------------------------------------

    def restore_yields(self) -> None:
        j, rejected = self.ctx.journal, self.ctx.outputs.rejected_ids
        yq = self.ctx.stage_yield(self.q_stage)
        yq.requests = j.count(self.q_stage, processed=True)
        yq.counts = j.kept_counts(self.q_stage)
        yq.kept = len(self.kept)
        yq.candidates = yq.kept + sum(1 for i in rejected if i.startswith("q-"))
        ya = self.ctx.stage_yield(ANSWERS)
        ya.requests = j.count(ANSWERS, processed=True)
        ya.counts = j.kept_counts(ANSWERS)
        ya.kept = sum(1 for i in self.ctx.outputs.kept_ids if i.startswith("qa-"))
        ya.candidates = ya.kept + sum(1 for i in rejected if i.startswith("qa-"))

    def pending_examples(self) -> float:
        """Examples expected from work already past the answers stage (none here: an answer is an example)."""
        return 0.0

    def _answer_share(self) -> float:
        """Share of answered questions that become kept examples."""
        return self.ctx.stage_yield(ANSWERS).share_kept(self.ctx.settings.assumed_yield)

    def _questions_per_request(self) -> float:
        asked = self.asked_per_request()
        return self.ctx.stage_yield(self.q_stage).kept_per_request(asked * self.ctx.settings.assumed_yield)

    # -- planning -----------------------------------------------------------------------------

    async def next_request(self) -> JournalEntry | None:
        ctx = self.ctx
        share = self._answer_share()
        answering = sum(len(e.meta.get("questions", [])) for e in ctx.in_flight(ANSWERS))
        remaining = ctx.need - self.pending_examples() - answering * share
        if remaining <= 0:
            return None
        questions_wanted = ceil_div(remaining, share)
        if self.unassigned and (len(self.unassigned) >= ctx.settings.answers_per_request
                                or self.in_flight(self.q_stage) == 0
                                or len(self.unassigned) >= questions_wanted):
            take = min(ctx.settings.answers_per_request, len(self.unassigned), questions_wanted)
            return await self._plan_answers(self.unassigned[:take])
        coming = self.in_flight(self.q_stage) * self._questions_per_request()
        if questions_wanted - len(self.unassigned) > coming:
            return self._plan_questions()
        return None

    async def plan_batch(self, stage: str, limit: int | None = None) -> list[JournalEntry]:
        planned: list[JournalEntry] = []
        wanted = ceil_div(self.ctx.need - self.pending_examples(), self._answer_share())
        if stage == self.q_stage:
            count = ceil_div(wanted - len(self.unassigned), self._questions_per_request())
            if limit is not None:
                count = min(count, limit)
            planned = [self._plan_questions() for _ in range(count)]
        else:
            per = self.ctx.settings.answers_per_request
            while self.unassigned and wanted > 0 and (limit is None or len(planned) < limit):
                take = min(per, len(self.unassigned), wanted)
                entry = await self._plan_answers(self.unassigned[:take])
                if entry is None:
                    break
                planned.append(entry)
                wanted -= take
        return planned

    def sample_request(self, stage: str) -> ChatRequest | None:
        index = self.ctx.journal.next_index
        if stage == self.q_stage:
            messages, meta = self.render_questions(self.ctx.journal.count(self.q_stage))
        elif self.unassigned:
            take = self.unassigned[:self.ctx.settings.answers_per_request]
            messages, meta = self.render_answers([self.kept[i] for i in take], None)
        else:
            return None
        return self.request(JournalEntry(kind="planned", index=index, stage=stage, messages=messages, meta=meta))

    def render_questions(self, number: int) -> tuple[list[dict[str, str]], dict[str, Any]]:
        """The `number`-th questions request (counted over the run): its keywords, in rotation."""
        s = self.ctx.settings
        k = min(s.keywords_per_request, len(self.order))
        start = number * k
        chosen = [self.order[(start + t) % len(self.order)] for t in range(k)]
        lines = []
        for kw in chosen:
            line = self.q_template.fill("keyword", {"keyword": kw})
            earlier = self.by_keyword.get(kw, [])[-s.avoid_questions:] if s.avoid_questions else []
            if earlier:
                line += "\n" + self.q_template.fill("avoid", {"questions": " / ".join(earlier)})
            lines.append(line)
        values = {"per_keyword": s.questions_per_keyword}
        fmt = self.q_template.fill("format:json" if self.ctx.structured else "format:text", values)
        user = self.q_template.fill("user", {**values, "keywords": "\n".join(lines), "format": fmt})
        messages = [{"role": "system", "content": self.q_template.fill("system", values)},
                    {"role": "user", "content": user}]
        return messages, {"keywords": chosen, "number": number}

    def _plan_questions(self) -> JournalEntry:
        number = self.ctx.journal.count(self.q_stage)
        messages, meta = self.render_questions(number)
        return self.ctx.journal.plan(self.q_stage, messages, meta)

    def render_answers(self, questions: list[KeptQuestion], snippets: list[list[Snippet]] | None
                       ) -> tuple[list[dict[str, str]], dict[str, Any]]:
        listing = "\n".join(f"{i}. {q.text}" for i, q in enumerate(questions, start=1))
        grounding = ""
        if snippets is not None and any(snippets):
            lines = [f"[{i}] {sn.title} - {sn.description}" for i, group in enumerate(snippets, start=1) for sn in group]
            grounding = "\n" + self.a_template.fill("grounding", {"snippets": "\n".join(lines)}) + "\n"
        keys = ", ".join(f'"answer_{i}"' for i in range(1, len(questions) + 1))
        values = {"count": len(questions), "keys": keys}
        fmt = self.a_template.fill("format:json" if self.ctx.structured else "format:text", values)
        user = self.a_template.fill("user", {**values, "questions": listing, "grounding": grounding, "format": fmt})
        messages = [{"role": "system", "content": self.a_template.fill("system", values)},
                    {"role": "user", "content": user}]
        meta: dict[str, Any] = {"questions": [q.model_dump() for q in questions]}
        if snippets is not None:
            meta["sources"] = [[sn.link for sn in group if sn.link] for group in snippets]
        return messages, meta

    async def _plan_answers(self, ids: list[str]) -> JournalEntry | None:
        questions = [self.kept[i] for i in ids]
        snippets = None
        if self.naver is not None:
            try:
                snippets = []
                for q in questions:
                    query = q.keyword if self.naver_settings.query == "keyword" and q.keyword else q.text
                    snippets.append(await self.naver.gather(query))
            except NaverQuotaExceeded as e:
                self.ctx.stop_reason = str(e)
                return None
        messages, meta = self.render_answers(questions, snippets)
        chosen = set(ids)
        self.unassigned = [i for i in self.unassigned if i not in chosen]
        return self.ctx.journal.plan(ANSWERS, messages, meta)

    def params(self, entry: JournalEntry) -> dict[str, Any]:
        params = self.base_params(entry.stage, entry.index)
        if self.ctx.structured:
            if entry.stage == self.q_stage:
                params["response_format"] = json_schema_format("questions", questions_schema(entry.meta["keywords"]))
            else:
                params["response_format"] = json_schema_format("answers", answers_schema(len(entry.meta["questions"])))
        return params

    # -- results ------------------------------------------------------------------------------

    def handle(self, entry: JournalEntry, result: ChatResult) -> Outcome:
        if entry.stage == self.q_stage:
            return self._handle_questions(entry, result)
        return self._handle_answers(entry, result)

    def _whole(self, outcome: Outcome, record: Rejected) -> Outcome:
        if not self.ctx.outputs.known(record.id):
            outcome.count(record)
            self.ctx.outputs.write([], [record])
        return outcome

    def _handle_questions(self, entry: JournalEntry, result: ChatResult) -> Outcome:
        call, key, outcome = result.call, result.request.key, Outcome()
        prefix = f"q-{key[:12]}"
        truncated = call.finish_reason == "length"
        keywords = entry.meta.get("keywords", [])
        if not call.content or not call.content.strip():
            return self._whole(outcome, Rejected(id=f"{prefix}-parse", reason=REASON_PARSE, stage=self.q_stage,
                                                 detail=call.error or "the answer is empty", request_key=key))
        try:
            pairs = self._question_pairs(call.content, keywords, truncated)
        except ParseError as e:
            return self._whole(outcome, Rejected(id=f"{prefix}-parse", reason=REASON_TRUNCATED if truncated else REASON_PARSE,
                                                 stage=self.q_stage, detail=str(e), text=call.content[:2000], request_key=key))
        share = cost_share(call.cost_usd, len(pairs))
        kept: list[KeptQuestion] = []
        rejected: list[Rejected] = []
        for j, pair in enumerate(pairs):
            qid = f"{prefix}-{j}"
            if qid in self.kept or self.ctx.outputs.known(qid):
                continue
            record = self._admit_question(qid, pair, key, share,
                                          cut=truncated and j == len(pairs) - 1 and not self.ctx.structured)
            if isinstance(record, KeptQuestion):
                kept.append(record)
                outcome.kept += 1
                outcome.candidates += 1
            else:
                rejected.append(record)
                outcome.count(record)
        self.ctx.outputs.write([], rejected)
        if kept and self._writer is not None:
            self._writer.append(kept)
        for q in kept:
            self.kept[q.id] = q
            self.by_keyword[q.keyword].append(q.text)
            self.unassigned.append(q.id)
        return outcome

    def _question_pairs(self, content: str, keywords: list[str], truncated: bool) -> list[tuple[str, str] | ParseError]:
        if not self.ctx.structured:
            return list(parse_question_list(content, keywords))
        try:
            data = extract_json(content)
            items = data.get("questions") if isinstance(data, dict) else data
            cut = False
        except ParseError:
            if not truncated:
                raise
            items, cut = salvage_array_items(content, "questions"), True
            if not items:
                raise ParseError("the answer was cut short (finish_reason length) before its first complete question") from None
        if not isinstance(items, list) or not items:
            raise ParseError('expected {"questions": [...]} with at least one question')
        out: list[tuple[str, str] | ParseError] = []
        for item in items:
            q = item.get("question") if isinstance(item, dict) else None
            if not isinstance(q, str):  # an empty string parsed: the gate rejects it as `empty`
                out.append(ParseError("an item has no question"))
                continue
            kw = item.get("keyword")
            out.append((kw if isinstance(kw, str) and kw in keywords else (keywords[0] if len(keywords) == 1 else ""),
                        q.strip()))
        if cut:
            out.append(ParseError("the last question was cut short (finish_reason length)"))
        return out

    def _admit_question(self, qid: str, pair: tuple[str, str] | ParseError, key: str, share: float | None,
                        *, cut: bool) -> KeptQuestion | Rejected:
        if isinstance(pair, ParseError):
            reason = REASON_TRUNCATED if "cut short" in str(pair) else REASON_PARSE
            return Rejected(id=qid, reason=reason, detail=str(pair), request_key=key, stage=self.q_stage)
        keyword, text = pair
        if cut:
            return Rejected(id=qid, reason=REASON_TRUNCATED, detail="the last question of an answer cut short "
                            "(finish_reason length)", text=text, request_key=key, stage=self.q_stage)
        refused = self.ctx.gate.check_question(qid, text, key)
        if refused is not None:
            return refused.model_copy(update={"stage": self.q_stage})
        verdict = self.qdedup.check_and_add(qid, text)
        if verdict.is_dup:
            return rejection(qid, verdict, text=text, request_key=key).model_copy(update={"stage": self.q_stage})
        return KeptQuestion(id=qid, text=text, keyword=keyword, request_key=key, cost_usd=share)

    def _handle_answers(self, entry: JournalEntry, result: ChatResult) -> Outcome:
        call, key, outcome = result.call, result.request.key, Outcome()
        questions = [KeptQuestion.model_validate(q) for q in entry.meta.get("questions", [])]
        sources = entry.meta.get("sources")
        truncated = call.finish_reason == "length"
        answers: dict[int, str] = {}
        problem = ""
        if not call.content or not call.content.strip():
            problem = call.error or "the answer is empty"
        else:
            try:
                answers = self._answers(call.content, len(questions), truncated)
            except ParseError as e:
                problem = str(e)
        share = cost_share(call.cost_usd, len(questions))
        records: list[Example | Rejected] = []
        candidates: list[Candidate] = []
        last = max(answers, default=0)
        for i, q in enumerate(questions, start=1):
            eid = "qa-" + q.id.removeprefix("q-")
            if self.ctx.outputs.known(eid):
                continue
            answer = answers.get(i)
            if answer is None:
                reason = REASON_TRUNCATED if truncated else REASON_PARSE
                records.append(Rejected(id=eid, reason=reason, text=q.text, request_key=key,
                                        detail=problem or f"no answer to question {i} of {len(questions)}"))
            else:
                cost = None if share is None or q.cost_usd is None else share + q.cost_usd
                provenance = Provenance(
                    recipe=self.name, model=call.model, seed_ids=[q.keyword] if q.keyword else [], request_key=key,
                    cost_usd=cost, question_id=q.id, question_request_key=q.request_key,
                    **({"sources": sources[i - 1]} if sources and i - 1 < len(sources) else {}),
                    **self.provenance_extra(q),
                )
                cut = truncated and i == last and not self.ctx.structured
                candidates.append(Candidate(eid, q.text, "", answer, provenance, "length" if cut else "stop"))
        return self._finish_answers(records, candidates, outcome)

    def _finish_answers(self, records: list[Example | Rejected], candidates: list[Candidate],
                        outcome: Outcome) -> Outcome:
        """The answered questions through the gate; each kept one is an example."""
        records += self.ctx.gate.admit_many(candidates)
        for record in records:
            outcome.count(record)
        self.ctx.outputs.write([r for r in records if isinstance(r, Example)],
                               [r for r in records if isinstance(r, Rejected)])
        return outcome

    def _answers(self, content: str, count: int, truncated: bool) -> dict[int, str]:
        if not self.ctx.structured:
            return parse_numbered_answers(content, count)
        data = json_or_salvage(content, truncated)
        if not isinstance(data, dict):
            raise ParseError(f"expected a JSON object with answer_1 .. answer_{count}")
        out = {}
        for i in range(1, count + 1):
            value = data.get(f"answer_{i}")
            if isinstance(value, str) and value.strip():
                out[i] = value.strip()
        if not out:
            raise ParseError(f"no answer_1 .. answer_{count} field with text")
        return out

    # -- dry run ------------------------------------------------------------------------------

    def dry_run(self) -> list[StagePlan]:
        s = self.ctx.settings
        share = self._answer_share()
        per_q_request = self._questions_per_request()
        need = max(0.0, self.ctx.need - self.pending_examples())
        wanted = ceil_div(need, share)
        n_q = ceil_div(wanted - len(self.unassigned), per_q_request)
        n_a = ceil_div(wanted, s.answers_per_request)
        base_index = self.ctx.journal.next_index
        numbered = self.ctx.journal.count(self.q_stage)
        q_requests = []
        for i in sample_indices(n_q):
            messages, meta = self.render_questions(numbered + i)
            q_requests.append(self.request(JournalEntry(kind="planned", index=base_index + i, stage=self.q_stage,
                                                        messages=messages, meta=meta)))
        a_requests = []
        filler = "?" * PLACEHOLDER_QUESTION_CHARS
        for i in sample_indices(n_a):
            group = [KeptQuestion(id=f"q-dry-{i}-{t}", text=filler, keyword=self.order[(i + t) % len(self.order)],
                                  request_key="") for t in range(s.answers_per_request)]
            snippets = None
            if self.naver_settings is not None and s.grounding == "naver":
                snippet = Snippet(kind="blog", title="", description="?" * PLACEHOLDER_SNIPPET_CHARS)
                per = self.naver_settings.display * len(self.naver_settings.kinds)
                snippets = [[snippet] * per for _ in group]
            messages, meta = self.render_answers(group, snippets)
            a_requests.append(self.request(JournalEntry(kind="planned", index=base_index + n_q + i, stage=ANSWERS,
                                                        messages=messages, meta=meta)))
        est = get_estimator(self.ctx.model)
        q_out = est.count("?" * PLACEHOLDER_QUESTION_CHARS) * per_q_request / max(s.assumed_yield, 1e-9)
        yq, ya = self.ctx.stage_yield(self.q_stage), self.ctx.stage_yield(ANSWERS)
        q_basis = (f"measured in this run folder ({yq.kept} kept from {yq.requests} requests)" if yq.requests
                   else f"assumed_yield {s.assumed_yield:.0%} (a default: nothing measured yet)")
        a_basis = (f"measured in this run folder ({ya.kept} kept of {ya.candidates})" if ya.candidates
                   else f"assumed_yield {s.assumed_yield:.0%} (a default: nothing measured yet)")
        # The range: both yields at their high end (fewest requests), then both at their low end.
        prior = s.yield_range
        asked = self.asked_per_request()
        q_low, q_high = per_request_range(yq, asked, prior)
        share_low, share_high = share_range(ya.kept, ya.candidates, prior)

        def counts(share: float, per_q: float) -> tuple[int, int]:
            wanted_at = ceil_div(need, share)
            return ceil_div(wanted_at - len(self.unassigned), per_q), ceil_div(wanted_at, s.answers_per_request)

        (q_few, a_few), (q_many, a_many) = counts(share_high, q_high), counts(share_low, q_low)
        plans = [
            StagePlan(self.q_stage, q_requests, n_q,
                      [f"{per_q_request:.1f} kept questions per request, {q_basis}",
                       *([f"{len(self.unassigned)} questions kept earlier and not answered yet"] if self.unassigned else []),
                       "a keyword's later rounds also show its earlier questions: those prompts will be longer"],
                      expected_output_tokens=min(float(s.max_tokens(self.q_stage)), q_out),
                      planned_range=(q_few, q_many)),
            StagePlan(ANSWERS, a_requests, n_a,
                      [f"{share:.0%} of answered questions kept, {a_basis}",
                       f"answer prompts rendered with placeholder questions of {PLACEHOLDER_QUESTION_CHARS} characters"
                       + (f" and Naver snippets of {PLACEHOLDER_SNIPPET_CHARS} characters" if s.grounding == "naver" else "")
                       + " (no question exists before the run)",
                       f"the range: {q_low:.1f} to {q_high:.1f} kept questions per request, "
                       f"{share_low:.0%} to {share_high:.0%} of answered questions kept"],
                      planned_range=(a_few, a_many)),
        ]
        return plans
