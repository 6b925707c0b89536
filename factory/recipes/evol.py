"""The evol recipe (WizardLM's Evol-Instruct): instructions rewritten into harder ones, then answered.

Parents come from `--seeds`: seed tasks, or a run's kept examples (`runs/NAME/examples.jsonl`
reads as seed tasks). Two stages, each its own ledger stage:

1. "evolve": a request shows `evolve_per_request` parents, each with the evolution asked of it
   (evolve.txt, ko and en), in depth (add a constraint, deepen, concretise, ask for more reasoning
   steps) or in breadth (a new instruction of the same domain and kind); the kinds go round for
   each parent. Every evolved instruction is checked BEFORE its answer is paid for, by the
   paper's elimination rules as named rejection reasons:
   - `prompt_copy`: it copies the evolving prompt's own words ("#Rewritten Prompt#", "given
     prompt", "재작성된 프롬프트") instead of being an instruction;
   - `no_gain`: it is its parent again (character 3-gram Jaccard with the parent at or above the
     dedup threshold), so the evolution added nothing;
   then the question filters and the near-duplicate check (against the parents, every kept
   instruction and the evaluation questions).
2. "answers": topics' answers stage; an answer that declines (the paper's "the model could not
   answer it") is dropped by the `refusal` filter, one of punctuation only by `no_text`.

Each example's provenance names its parent (`parent_id`) and the evolution (`evolution`).
"""

from __future__ import annotations

import re
from typing import Any

from factory.engine import ChatResult
from factory.engine.structured import json_schema_format
from factory.quality import jaccard, shingle_sets
from factory.recipes.base import Context
from factory.recipes.journal import JournalEntry
from factory.recipes.templates import Template, load_template
from factory.recipes.textparse import ParseError, extract_json, salvage_array_items
from factory.recipes.topics import ANSWERS, KeptQuestion, Topics
from schemas import Rejected, SeedTask

EVOLVE = "evolve"
DEPTH = ("constraints", "deepen", "concretize", "reasoning")
KINDS = (*DEPTH, "breadth")
REASON_PROMPT_COPY = "prompt_copy"
REASON_NO_GAIN = "no_gain"
# The evolving prompt's own words, which an evolved instruction must not carry.
_PROMPT_WORDS = re.compile(r"#\s*(?:rewritten|given)\s+(?:prompt|instruction)\s*#|\b(?:rewritten|given)\s+prompt\b"
                           r"|재작성된\s*(?:프롬프트|지시)|주어진\s*(?:프롬프트|지시)", re.IGNORECASE)
_TEXT_ITEM = re.compile(r"^[ \t]*\[(?:instruction|지시)[ \t]*(\d+)\][ \t]*$", re.IGNORECASE | re.MULTILINE)


def evolve_schema(ids: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"instructions": {"type": "array", "items": {
            "type": "object",
            "properties": {"id": {"type": "string", "enum": ids}, "instruction": {"type": "string"}},
            "required": ["id", "instruction"],
            "additionalProperties": False,
        }}},
        "required": ["instructions"],
        "additionalProperties": False,
    }


class Evol(Topics):
    name = "evol"
    q_stage = EVOLVE
    stages = (EVOLVE, ANSWERS)

    def __init__(self, ctx: Context, parents: list[SeedTask], **kwargs: Any) -> None:
        if not parents:
            raise ValueError("evol needs at least one parent instruction")
        self.parents = {p.id: p for p in parents}
        super().__init__(ctx, list(self.parents), **kwargs)
        self.qdedup.add_many(((p.id, p.instruction) for p in parents), kind="seed")
        self._kinds: dict[str, str] = {}  # parent id -> kind, of the request being handled

    def question_template(self) -> Template:
        ctx = self.ctx
        return load_template("evolve", ctx.lang, ctx.settings.prompts).require(
            ["system", "user", "parent", *(f"kind:{k}" for k in KINDS), "format:json", "format:text"],
            {"user": ["parents", "format"], "parent": ["id", "kind", "instruction"]})

    def asked_per_request(self) -> int:
        return min(self.ctx.settings.evolve_per_request, len(self.keywords))

    def kind_of(self, parent_id: str, round_: int) -> str:
        """The evolution asked of a parent on its `round_`-th turn: the kinds in turn, from a per-parent start."""
        start = sum(parent_id.encode()) + self.ctx.settings.seed
        return KINDS[(start + round_) % len(KINDS)]

    def render_questions(self, number: int) -> tuple[list[dict[str, str]], dict[str, Any]]:
        k = self.asked_per_request()
        start = number * k
        chosen = [self.order[(start + t) % len(self.order)] for t in range(k)]
        kinds = [self.kind_of(pid, (start + t) // len(self.order)) for t, pid in enumerate(chosen)]
        t = self.q_template
        listing = "\n\n".join(t.fill("parent", {"id": pid, "kind": t.fill(f"kind:{kind}", {}),
                                                "instruction": self.parents[pid].instruction})
                              for pid, kind in zip(chosen, kinds, strict=True))
        fmt = t.fill("format:json" if self.ctx.structured else "format:text", {"count": k})
        user = t.fill("user", {"parents": listing, "format": fmt, "count": k})
        messages = [{"role": "system", "content": t.fill("system", {})}, {"role": "user", "content": user}]
        return messages, {"keywords": chosen, "kinds": kinds, "number": number}

    def params(self, entry: JournalEntry) -> dict[str, Any]:
        if entry.stage != EVOLVE:
            return super().params(entry)
        params = self.base_params(EVOLVE, entry.index)
        if self.ctx.structured:
            params["response_format"] = json_schema_format("evolved", evolve_schema(entry.meta["keywords"]))
        return params

    # -- results ------------------------------------------------------------------------------

    def _handle_questions(self, entry: JournalEntry, result: ChatResult) -> Any:
        self._kinds = dict(zip(entry.meta.get("keywords", []), entry.meta.get("kinds", []), strict=False))
        return super()._handle_questions(entry, result)

    def _question_pairs(self, content: str, keywords: list[str], truncated: bool) -> list[tuple[str, str] | ParseError]:
        if not self.ctx.structured:
            return _text_items(content, keywords)
        try:
            data = extract_json(content)
            items = data.get("instructions") if isinstance(data, dict) else data
        except ParseError:
            if not truncated:
                raise
            items = salvage_array_items(content, "instructions")
        if not isinstance(items, list) or not items:
            raise ParseError('expected {"instructions": [{"id": ..., "instruction": ...}, ...]}')
        out: list[tuple[str, str] | ParseError] = []
        for item in items:
            text = item.get("instruction") if isinstance(item, dict) else None
            pid = item.get("id") if isinstance(item, dict) else None
            if not isinstance(text, str) or pid not in keywords:
                out.append(ParseError("an item has no instruction, or no parent id of this request"))
                continue
            out.append((pid, text.strip()))
        return out

    def _admit_question(self, qid: str, pair: tuple[str, str] | ParseError, key: str, share: float | None,
                        *, cut: bool) -> KeptQuestion | Rejected:
        if not isinstance(pair, ParseError) and not cut:
            parent_id, text = pair
            parent = self.parents[parent_id].instruction
            if _PROMPT_WORDS.search(text):
                return Rejected(id=qid, reason=REASON_PROMPT_COPY, stage=EVOLVE, text=text, request_key=key,
                                detail=f"it copies the evolving prompt's words ({_PROMPT_WORDS.search(text).group(0)!r})")
            settings = self.ctx.deduper.settings
            a, b = shingle_sets([text, parent], settings.shingle_size)
            similarity = jaccard(a, b)
            if similarity >= settings.threshold:
                return Rejected(id=qid, reason=REASON_NO_GAIN, stage=EVOLVE, text=text, request_key=key,
                                detail=f"its parent {parent_id} again (similarity {similarity:.2f}): the evolution "
                                       "added nothing")
        record = super()._admit_question(qid, pair, key, share, cut=cut)
        if isinstance(record, KeptQuestion):
            record = KeptQuestion.model_validate({**record.model_dump(), "kind": self._kinds.get(record.keyword, "")})
        return record

    def provenance_extra(self, question: KeptQuestion) -> dict[str, Any]:
        return {"parent_id": question.keyword, "evolution": (question.model_extra or {}).get("kind", "")}


def _text_items(content: str, ids: list[str]) -> list[tuple[str, str] | ParseError]:
    """The text format's `[Instruction N]` blocks, N the parent's number in the request."""
    marks = list(_TEXT_ITEM.finditer(content))
    if not marks:
        if len(ids) == 1 and content.strip():
            return [(ids[0], content.strip())]
        raise ParseError("no [Instruction N] lines")
    out: list[tuple[str, str] | ParseError] = []
    for m, nxt in zip(marks, [*marks[1:], None], strict=True):
        n = int(m.group(1))
        text = content[m.end(): nxt.start() if nxt else len(content)].strip()
        out.append((ids[n - 1], text) if 1 <= n <= len(ids) else ParseError(f"[Instruction {n}]: no such parent"))
    return out


__all__ = ["EVOLVE", "KINDS", "REASON_NO_GAIN", "REASON_PROMPT_COPY", "Evol"]
