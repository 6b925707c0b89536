"""Answers to an evaluation set from any OpenAI-compatible endpoint, through the factory engine: the
part behind `python -m judge answer` (judge/commands/answer.py, whose help tells the story).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, Field

from factory.engine import ChatRequest, ChatResult, Engine, EngineSettings, Ledger
from schemas import (
    Answer,
    EvalSetError,
    JsonlWriter,
    Question,
    RunFolder,
    fully_answered,
    load_questions,
    temperature_for,
)
from judge.errors import AnswerError

STAGE = "eval-answers"
SECTION = "answer"
# MT-Bench's sampling temperature per category, as trainer/answering.py uses it (judge may not
# import trainer; a test holds the two tables equal), so local and served answers compare.


class RemoteAnswerSettings(BaseModel):
    """What `[answer.LABEL]` records for answers from an endpoint."""

    model_config = ConfigDict(extra="forbid")

    questions: Path
    model: str = Field(min_length=1, description="the model name the endpoint serves")
    label: str = Field(min_length=1, description="model label in answers.jsonl")
    endpoint: str = Field(description="the OpenAI-compatible API root")
    max_tokens: int = Field(default=1024, ge=1, le=128_000, description="per turn")
    sampling: Literal["per-category", "greedy"] = "per-category"
    seed: int | None = Field(default=None, description="sent as the `seed` parameter when given")


# --------------------------------------------------------------------------------------------
# Inputs and the record of settings


# --------------------------------------------------------------------------------------------
# Asking, turn by turn


@dataclass
class _Conversation:
    question: Question
    temperature: float
    texts: list[str] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    truncated: list[bool] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # the ledger's request per turn: what the label's answers cost
    latency_s: float = 0.0
    error: str = ""

    def messages(self) -> list[dict[str, str]]:
        """The conversation so far, ending with the next question."""
        out: list[dict[str, str]] = []
        for asked, answered in zip(self.question.turns, self.texts, strict=False):
            out += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
        out.append({"role": "user", "content": self.question.turns[len(self.texts)]})
        return out


@dataclass
class AnswerCounts:
    answered: int = 0
    turns: int = 0
    failed: int = 0
    unfinished: int = 0
    cached: int = 0
    cost_usd: float | None = 0.0
    stopped_reason: str | None = None
    first_error: str = ""


class Answering:
    """One turn per round: round t asks turn t of every conversation that reached it."""

    def __init__(self, conversations: list[_Conversation], writer: JsonlWriter, settings: RemoteAnswerSettings) -> None:
        self.conversations = conversations
        self.writer = writer
        self.settings = settings
        self.counts = AnswerCounts()
        self._slots: dict[str, list[_Conversation]] = {}

    def round_requests(self, turn: int) -> list[ChatRequest]:
        self._slots = {}
        requests = []
        for conv in self.conversations:
            if conv.error or len(conv.texts) != turn or len(conv.question.turns) <= turn:
                continue
            params: dict[str, Any] = {"max_tokens": self.settings.max_tokens, "temperature": conv.temperature}
            if self.settings.seed is not None:
                params["seed"] = self.settings.seed
            request = ChatRequest(STAGE, self.settings.model, conv.messages(), params)
            slots = self._slots.setdefault(request.key, [])
            if not slots:
                requests.append(request)
            slots.append(conv)  # two questions with the same first turn: asked once
        return requests

    def on_result(self, result: ChatResult) -> None:
        if result.cached:
            self.counts.cached += 1
        for conv in self._slots.pop(result.request.key, []):
            if not result.ok or result.content is None:
                conv.error = result.call.error or "no text in the reply"
                self.counts.failed += 1
                self.counts.first_error = self.counts.first_error or conv.error
                continue
            conv.texts.append(result.content)
            conv.tokens.append(result.call.usage.output_tokens)
            conv.truncated.append(result.call.finish_reason == "length")
            conv.keys.append(result.request.key)
            conv.latency_s += result.call.latency_s or 0.0
            self.counts.turns += 1
            if len(conv.texts) == len(conv.question.turns):
                self.writer.append(Answer(
                    question_id=conv.question.question_id, model=self.settings.label, turns=conv.texts,
                    tokens=conv.tokens, latency_s=round(conv.latency_s, 4), truncated=conv.truncated,
                    temperature=conv.temperature, request_keys=conv.keys,
                ))
                self.counts.answered += 1

    def add_cost(self, cost: float | None) -> None:
        if cost is None or self.counts.cost_usd is None:
            self.counts.cost_usd = None
        else:
            self.counts.cost_usd += cost


async def _answer(answering: Answering, engine: Engine, turns: int) -> None:
    for turn in range(turns):
        requests = answering.round_requests(turn)
        if not requests:
            continue
        stats = await engine.run(requests, answering.on_result, total=len(requests))
        answering.add_cost(stats.cost_usd)
        if stats.stopped_reason:
            answering.counts.stopped_reason = stats.stopped_reason
            break


def answer_run(run: Path, settings: RemoteAnswerSettings, engine_settings: EngineSettings, *,
               http_client: httpx.AsyncClient | None = None, api_key: str | None = None) -> tuple[AnswerCounts, int]:
    """Answer what `settings.label` has not answered yet; returns the counts and how many were
    answered before. Raises AnswerError for inputs to fix, FatalAPIError when the endpoint refuses."""
    out = RunFolder(run).answers
    try:
        questions = load_questions(settings.questions)
        done = fully_answered(out, settings.label, questions)
    except EvalSetError as e:
        raise AnswerError(str(e)) from None
    todo = [q for q in questions if q.question_id not in done]
    if not todo:
        return AnswerCounts(), len(done)
    conversations = [_Conversation(q, temperature_for(q.category, settings.sampling)) for q in todo]
    with Ledger.for_run(run) as ledger:
        engine = Engine(engine_settings, ledger, api_key=api_key, http_client=http_client)
        # [answer.LABEL] with the engine's settings under it; nothing secret: the key is never a setting
        RunFolder(run).write_config_section((SECTION, settings.label), {**settings.model_dump(mode="json", exclude_none=True), "engine": engine_settings})
        with JsonlWriter(out) as writer:
            answering = Answering(conversations, writer, settings)
            anyio.run(_answer, answering, engine, max(len(q.turns) for q in todo))
    counts = answering.counts
    counts.unfinished = sum(1 for c in conversations if not c.error and len(c.texts) < len(c.question.turns))
    return counts, len(done)
