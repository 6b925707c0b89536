"""The records the stages exchange. Every stage reads and writes these, and nothing else of ours."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator


class Record(BaseModel):
    """Base: unknown fields are kept, so a newer file still loads in an older tool."""

    model_config = ConfigDict(extra="allow")


class Instance(Record):
    input: str = ""
    output: str = ""


class SeedTask(Record):
    """A seed task in the self-instruct format (`seed_tasks.jsonl`) or our simpler one."""

    id: str
    name: str = ""
    instruction: str = Field(min_length=1)
    instances: list[Instance] = Field(default_factory=list)
    is_classification: bool = False


class Usage(Record):
    """Token counts as the API reports them in `usage`."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )


RequestStatus = Literal["pending", "done", "failed"]


class LLMCall(Record):
    """One LLM request as the ledger keeps it. `key` is the hash of the canonical request."""

    key: str
    stage: str
    model: str
    status: RequestStatus = "pending"
    attempts: int = 0
    rate_limited: int = 0  # attempts the API answered 429
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float | None = None  # None: the price is unknown, never 0
    latency_s: float | None = None  # the answered attempt: from sending to the whole answer
    # Seconds the request waited in the engine before its attempts went out: the rate limiter
    # (RPM, TPM reservations, a 429 pause), the budget, retry back-off. Not the server's time.
    wait_s: float = 0.0
    finish_reason: str | None = None
    content: str | None = None
    error: str | None = None
    batch: bool = False


class Provenance(Record):
    recipe: str
    model: str
    seed_ids: list[str] = Field(default_factory=list)
    request_key: str = ""
    cost_usd: float | None = None  # this example's share of its request's cost


class Message(BaseModel):
    """One turn of a conversation, in OpenAI's chat shape."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str


class Example(Record):
    """One instruction example: what the trainer learns from.

    A single-turn example is `instruction` (+ `input`) and `output`. A multi-turn one also carries
    the whole conversation in `messages` (user first, turns alternating, an assistant turn last);
    its first user turn is `prompt()` and its first answer `output`, so that what reads one turn
    (the filters, dedup on the first turn, the reports) reads a conversation the same way.
    """

    id: str
    instruction: str = Field(min_length=1)
    input: str = ""
    output: str = Field(min_length=1)
    system: str = ""
    lang: str = ""
    provenance: Provenance | None = None
    messages: list[Message] | None = None

    @model_validator(mode="after")
    def _conversation(self) -> Example:
        if self.messages is None:
            return self
        roles = [m.role for m in self.messages]
        if len(roles) < 2 or roles != ["user", "assistant"] * (len(roles) // 2):
            raise ValueError(f"example {self.id}: messages must alternate user and assistant turns, user first and "
                             f"an assistant turn last (got {roles})")
        if self.messages[0].content != self.prompt() or self.messages[1].content != self.output:
            raise ValueError(f"example {self.id}: the first two messages must be the example's prompt (instruction, "
                             "then input) and its output")
        if any(not m.content.strip() for m in self.messages):
            raise ValueError(f"example {self.id}: a turn of its messages is empty")
        return self

    @model_serializer(mode="wrap")
    def _single_turn_as_before(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict) and data.get("messages", 0) is None:
            del data["messages"]  # a single-turn example's line stays what it always was
        return data

    def prompt(self) -> str:
        """The user turn: instruction, then the input (if any) after a blank line."""
        return f"{self.instruction}\n\n{self.input}" if self.input else self.instruction

    def conversation(self) -> list[Message]:
        """Every turn: `messages`, or the prompt and the output of a single-turn example."""
        if self.messages is not None:
            return list(self.messages)
        return [Message(role="user", content=self.prompt()), Message(role="assistant", content=self.output)]


class Rejected(Record):
    """A dropped example or request output, with the reason it was dropped."""

    id: str
    reason: str  # a filter's name: "duplicate", "parse", "length", "language", ...
    detail: str = ""
    text: str = ""
    request_key: str = ""


class Question(Record):
    """An evaluation question (MT-Bench format: `question_id`, `category`, `turns`, `reference`)."""

    question_id: str
    category: str = "general"
    turns: list[str] = Field(min_length=1)
    reference: list[str] | None = None
    lang: str = ""

    @model_validator(mode="before")
    @classmethod
    def _id_as_str(cls, data: object) -> object:
        # MT-Bench question files use integer ids.
        if isinstance(data, dict) and isinstance(data.get("question_id"), int):
            data = {**data, "question_id": str(data["question_id"])}
        return data


class Answer(Record):
    """A model's answer to every turn of one question."""

    question_id: str
    model: str  # a label: "base", "lora", "gpt-4o", ...
    turns: list[str]
    tokens: list[int] = Field(default_factory=list)
    latency_s: float | None = None


class Judgment(Record):
    """One grading. An unparseable verdict is `unscored`, never a number."""

    question_id: str
    mode: Literal["single", "pair", "reference"]
    turn: int = 1
    model: str
    baseline: str | None = None
    judge_model: str
    status: Literal["scored", "unscored"]
    score: float | None = None  # single/reference: 1-10
    winner: Literal["model", "baseline", "tie"] | None = None  # pair, after both orders
    rationale: str = ""
    error: str | None = None
    request_keys: list[str] = Field(default_factory=list)
    cost_usd: float | None = None

    @model_validator(mode="after")
    def _scored_has_verdict(self) -> Judgment:
        if self.status == "scored" and self.score is None and self.winner is None:
            raise ValueError("a scored judgment needs a score or a winner")
        if self.status == "unscored" and (self.score is not None or self.winner is not None):
            raise ValueError("an unscored judgment carries no score and no winner")
        return self
