"""The conversation recipe: keywords -> questions -> answers -> follow-ups, a conversation of
`turns` user turns per example (MT-Bench's evaluation has two).

Stages 1 and 2 are the topics recipe's (topics.py): questions pass the filters and the
near-duplicate check before any answer is paid for, and each answered question passes the gate
(filters, then the near-duplicate check of the first turn against seeds, eval questions and every
kept example). A kept first turn opens a conversation (`runs/NAME/generate/conversations.jsonl`,
one line per state, the last line of an id winning) instead of becoming an example.
3. "followups": a request shows one conversation so far and asks for the user's next question,
   which must build on the assistant's last answer, and the assistant's answer to it
   (followups.txt, ko and en). The new turn is tidied and filtered like an example (not checked
   for near-duplicates alone: generic follow-ups recur by nature); a turn that fails closes its
   conversation with the rejection recorded. At `turns` user turns the conversation is checked
   for near-duplicates as a whole against the other finished ones and written as an example with
   `messages` (instruction and output: its first turn).

Each follow-up request carries the conversation it extends in its journal entry, so a rerun after
a crash sends the same request (the ledger answers it) and a turn is never added twice.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from factory.engine import ChatRequest, ChatResult
from factory.engine.structured import json_schema_format
from factory.quality import Deduper, rejection
from factory.recipes.base import (
    REASON_PARSE,
    REASON_TRUNCATED,
    Candidate,
    Context,
    Outcome,
    StagePlan,
    ceil_div,
    sample_indices,
    share_range,
)
from factory.recipes.journal import JournalEntry
from factory.recipes.templates import Template, load_template
from factory.recipes.textparse import ParseError, json_or_salvage
from factory.recipes.topics import ANSWERS, PLACEHOLDER_QUESTION_CHARS, QUESTIONS, Topics
from factory.engine.tokens import get_estimator
from schemas import Example, JsonlWriter, Message, Provenance, Rejected, iter_jsonl

FOLLOWUPS = "followups"
PLACEHOLDER_ANSWER_CHARS = 900  # dry run: the answers of a conversation rendered before any exists
FOLLOWUP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
    "required": ["question", "answer"],
    "additionalProperties": False,
}


class OpenConversation(BaseModel):
    """A conversation still growing (or `closed`: finished as an example, or dropped at a turn)."""

    id: str
    turns: list[Message]
    provenance: dict[str, Any]  # the first turn's (recipe, model, keyword, question ids)
    cost_usd: float | None = None  # every request's share so far; None: a price is unknown
    request_keys: list[str] = Field(default_factory=list)  # the follow-up requests, in order
    closed: bool = False

    @property
    def user_turns(self) -> int:
        return len(self.turns) // 2


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


class Conversation(Topics):
    name = "conversation"
    stages = (QUESTIONS, ANSWERS, FOLLOWUPS)

    def __init__(self, ctx: Context, keywords: list[str], **kwargs: Any) -> None:
        super().__init__(ctx, keywords, **kwargs)
        self.f_template: Template = load_template("followups", ctx.lang, ctx.settings.prompts).require(
            ["system", "user", "turn", "format:json", "format:text"],
            {"user": ["conversation", "turn", "format"], "turn": ["question", "answer"]})
        ctx.gate.learn_prompts(self.f_template)
        self.path = ctx.folder.conversations
        self.conversations: dict[str, OpenConversation] = {c.id: c for c in iter_jsonl(self.path, OpenConversation)}
        # First turns of growing conversations are in the run's index (finished ones are kept examples).
        ctx.deduper.add_many(((c.id, c.turns[0].content) for c in self.conversations.values() if not c.closed),
                             kind="kept")
        self.whole = Deduper(ctx.deduper.settings)  # finished conversations, each as one text
        self.whole.add_many((ex.id, _joined(ex.conversation())) for ex in iter_jsonl(ctx.folder.examples, Example)
                            if ex.messages is not None)
        asked = {(e.meta.get("conversation"), e.meta.get("turn")) for e in ctx.journal.entries(FOLLOWUPS)}
        self.available = [c.id for c in self.conversations.values()
                          if not c.closed and (c.id, c.user_turns + 1) not in asked]
        self._cwriter = None if ctx.dry_run else JsonlWriter(self.path)

    async def aclose(self) -> None:
        if self._cwriter is not None:
            self._cwriter.close()
        await super().aclose()

    # -- yields -------------------------------------------------------------------------------

    def restore_yields(self) -> None:
        super().restore_yields()
        j, rejected = self.ctx.journal, self.ctx.outputs.rejected_ids
        ya = self.ctx.stage_yield(ANSWERS)  # an answer's kept item is a conversation opened
        ya.kept = len(self.conversations)
        ya.candidates = ya.kept + sum(1 for i in rejected if i.startswith("qa-"))
        yf = self.ctx.stage_yield(FOLLOWUPS)
        yf.requests = j.count(FOLLOWUPS, processed=True)
        yf.counts = j.kept_counts(FOLLOWUPS)
        yf.kept, yf.candidates = sum(yf.counts), yf.requests

    def _completion(self) -> float:
        """Share of opened conversations that reach `turns` user turns."""
        p = self.ctx.stage_yield(FOLLOWUPS).share_kept(self.ctx.settings.assumed_yield)
        return p ** (self.ctx.settings.turns - 1)

    def _answer_share(self) -> float:
        return super()._answer_share() * self._completion()

    def pending_examples(self) -> float:
        growing = [c for c in self.conversations.values() if not c.closed]
        p = self.ctx.stage_yield(FOLLOWUPS).share_kept(self.ctx.settings.assumed_yield)
        return sum(p ** (self.ctx.settings.turns - c.user_turns) for c in growing)

    # -- planning -----------------------------------------------------------------------------

    async def next_request(self) -> JournalEntry | None:
        if self.available:  # finishing conversations first: each is nearly an example
            return self._plan_followup(self.available.pop(0))
        return await super().next_request()

    async def plan_batch(self, stage: str, limit: int | None = None) -> list[JournalEntry]:
        if stage != FOLLOWUPS:
            return await super().plan_batch(stage, limit)
        take = self.available if limit is None else self.available[:limit]
        planned = [self._plan_followup(cid) for cid in list(take)]
        self.available = self.available[len(planned):]
        return planned

    def sample_request(self, stage: str) -> ChatRequest | None:
        if stage != FOLLOWUPS:
            return super().sample_request(stage)
        if not self.available:
            return None
        messages, meta = self.render_followup(self.conversations[self.available[0]])
        return self.request(JournalEntry(kind="planned", index=self.ctx.journal.next_index, stage=FOLLOWUPS,
                                         messages=messages, meta=meta))

    def render_followup(self, conv: OpenConversation) -> tuple[list[dict[str, str]], dict[str, Any]]:
        pairs = [(conv.turns[i].content, conv.turns[i + 1].content) for i in range(0, len(conv.turns), 2)]
        shown = "\n\n".join(self.f_template.fill("turn", {"question": q, "answer": a}) for q, a in pairs)
        turn = len(pairs) + 1
        fmt = self.f_template.fill("format:json" if self.ctx.structured else "format:text", {})
        user = self.f_template.fill("user", {"conversation": shown, "turn": turn, "format": fmt})
        messages = [{"role": "system", "content": self.f_template.fill("system", {})},
                    {"role": "user", "content": user}]
        return messages, {"conversation": conv.id, "turn": turn, "turns": [m.model_dump() for m in conv.turns]}

    def _plan_followup(self, cid: str) -> JournalEntry:
        messages, meta = self.render_followup(self.conversations[cid])
        return self.ctx.journal.plan(FOLLOWUPS, messages, meta)

    def params(self, entry: JournalEntry) -> dict[str, Any]:
        if entry.stage != FOLLOWUPS:
            return super().params(entry)
        params = self.base_params(FOLLOWUPS, entry.index)
        if self.ctx.structured:
            params["response_format"] = json_schema_format("followup", FOLLOWUP_SCHEMA)
        return params

    # -- results ------------------------------------------------------------------------------

    def handle(self, entry: JournalEntry, result: ChatResult) -> Outcome:
        if entry.stage == FOLLOWUPS:
            return self._handle_followup(entry, result)
        return super().handle(entry, result)

    def _finish_answers(self, records: list[Example | Rejected], candidates: list[Candidate],
                        outcome: Outcome) -> Outcome:
        """A kept first turn opens a conversation (not an example yet)."""
        fresh = [c for c in candidates if _conversation_id(c.id) not in self.conversations
                 and not self.ctx.outputs.known(_conversation_id(c.id))]
        records += self.ctx.gate.admit_many(fresh)
        for record in records:
            outcome.count(record)
        self.ctx.outputs.write([], [r for r in records if isinstance(r, Rejected)])
        for ex in (r for r in records if isinstance(r, Example)):
            provenance = ex.provenance.model_dump() if ex.provenance else {}
            conv = OpenConversation(id=_conversation_id(ex.id), provenance=provenance,
                                    turns=[Message(role="user", content=ex.instruction),
                                           Message(role="assistant", content=ex.output)],
                                    cost_usd=provenance.get("cost_usd"))
            self._save(conv)
            self.available.append(conv.id)
        return outcome

    def _save(self, conv: OpenConversation) -> None:
        self.conversations[conv.id] = conv
        if self._cwriter is not None:
            self._cwriter.append(conv)

    def _handle_followup(self, entry: JournalEntry, result: ChatResult) -> Outcome:
        call, key, outcome = result.call, result.request.key, Outcome()
        conv = self.conversations.get(entry.meta["conversation"])
        turn = int(entry.meta["turn"])
        if conv is None or conv.closed or conv.user_turns >= turn:
            return outcome  # processed before a crash: the turn is in the file already
        tid = f"{conv.id}-t{turn}"
        if self.ctx.outputs.known(tid) or self.ctx.outputs.known(conv.id):  # written before a crash
            self._save(conv.model_copy(update={"closed": True}))
            return outcome
        truncated = call.finish_reason == "length"
        try:
            question, answer = self._followup(call.content or "", truncated)
            checked = self.ctx.gate.check_turn(tid, question, answer, call.finish_reason, key)
        except ParseError as e:
            checked = Rejected(id=tid, reason=REASON_TRUNCATED if truncated else REASON_PARSE, detail=str(e),
                               text=(call.content or "")[:2000], request_key=key)
        if isinstance(checked, Rejected):
            record = checked.model_copy(update={"stage": FOLLOWUPS})
            outcome.count(record)
            self.ctx.outputs.write([], [record])
            self._save(conv.model_copy(update={"closed": True}))
            return outcome
        outcome.kept, outcome.candidates = 1, 1
        grown = conv.model_copy(update={
            "turns": [*conv.turns, Message(role="user", content=checked[0]), Message(role="assistant", content=checked[1])],
            "cost_usd": _add(conv.cost_usd, call.cost_usd), "request_keys": [*conv.request_keys, key]})
        if grown.user_turns < self.ctx.settings.turns:
            self._save(grown)
            self.available.append(grown.id)
            return outcome
        self._finish(grown)
        return outcome

    def _finish(self, conv: OpenConversation) -> None:
        """A conversation of `turns` user turns: one example, unless it is a near-copy of another."""
        provenance = Provenance.model_validate({**conv.provenance, "recipe": self.name, "cost_usd": conv.cost_usd,
                                                "followup_request_keys": conv.request_keys})
        example = Example(id=conv.id, instruction=conv.turns[0].content, output=conv.turns[1].content,
                          lang=self.ctx.lang, provenance=provenance, messages=conv.turns)
        verdict = self.whole.check_and_add(conv.id, _joined(conv.turns))
        if verdict.is_dup:
            self.ctx.outputs.write([], [rejection(conv.id, verdict, text=_joined(conv.turns)[:2000],
                                                  request_key=provenance.request_key)])
        else:
            self.ctx.outputs.write([example], [])
        self._save(conv.model_copy(update={"closed": True}))

    def _followup(self, content: str, truncated: bool) -> tuple[str, str]:
        if not content.strip():
            raise ParseError("the answer is empty")
        if self.ctx.structured:
            data = json_or_salvage(content, truncated)
            if not isinstance(data, dict) or not isinstance(data.get("question"), str) \
                    or not isinstance(data.get("answer"), str):
                raise ParseError('expected {"question": "...", "answer": "..."}')
            return data["question"], data["answer"]
        return _text_followup(content, self.ctx.lang)

    # -- dry run ------------------------------------------------------------------------------

    def dry_run(self) -> list[StagePlan]:
        plans = super().dry_run()
        s = self.ctx.settings
        growing = [c for c in self.conversations.values() if not c.closed]
        need = max(0.0, self.ctx.need - self.pending_examples())
        left = sum(s.turns - c.user_turns for c in growing)
        n_f = ceil_div(need, self._completion()) * (s.turns - 1) + left
        # The range: every follow-up kept (fewest requests) to the low end of the follow-ups' yield.
        yf = self.ctx.stage_yield(FOLLOWUPS)
        p_low, p_high = share_range(yf.kept, yf.candidates, s.yield_range)
        few = ceil_div(need, p_high ** (s.turns - 1)) * (s.turns - 1) + left
        many = ceil_div(need, p_low ** (s.turns - 1)) * (s.turns - 1) + left
        requests = []
        filler_q, filler_a = "?" * PLACEHOLDER_QUESTION_CHARS, "?" * PLACEHOLDER_ANSWER_CHARS
        for i in sample_indices(n_f):
            turns = 1 + i % (s.turns - 1)
            conv = OpenConversation(id=f"cv-dry-{i}", provenance={}, turns=[
                Message(role=r, content=filler_q if r == "user" else filler_a)
                for _ in range(turns) for r in ("user", "assistant")])
            messages, meta = self.render_followup(conv)
            requests.append(self.request(JournalEntry(kind="planned", index=self.ctx.journal.next_index + i,
                                                      stage=FOLLOWUPS, messages=messages, meta=meta)))
        est = get_estimator(self.ctx.model)
        out = est.count(filler_q) + est.count(filler_a)
        plans.append(StagePlan(FOLLOWUPS, requests, n_f,
                               [f"{s.turns - 1} follow-up request(s) per conversation, {self._completion():.0%} of "
                                "opened conversations finished",
                                f"prompts rendered with placeholder turns ({PLACEHOLDER_QUESTION_CHARS} characters a "
                                f"question, {PLACEHOLDER_ANSWER_CHARS} an answer)"],
                               expected_output_tokens=min(float(s.max_tokens(FOLLOWUPS)), float(out)),
                               planned_range=(few, many)))
        return plans


def _conversation_id(example_id: str) -> str:
    return "cv-" + example_id.removeprefix("qa-")


def _joined(turns: list[Message]) -> str:
    return "\n".join(m.content for m in turns)


_TEXT_LABELS = {"en": ("[Question]", "[Answer]"), "ko": ("[질문]", "[답변]")}


def _text_followup(content: str, lang: str) -> tuple[str, str]:
    """The text format's `[Question] ... [Answer] ...` (either language's labels)."""
    for q_label, a_label in _TEXT_LABELS.values():
        if q_label in content and a_label in content.split(q_label, 1)[1]:
            rest = content.split(q_label, 1)[1]
            question, answer = rest.split(a_label, 1)
            return question.strip(), answer.strip()
    labels = _TEXT_LABELS.get(lang, _TEXT_LABELS["en"])
    raise ParseError(f"no {labels[0]} and {labels[1]} sections")


__all__ = ["FOLLOWUPS", "Conversation", "OpenConversation"]
