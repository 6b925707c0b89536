"""The `generate` command's settings (the `[generate]` section of a settings file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class GenerateSettings(BaseModel):
    """What to generate and how. The engine's settings (model, limits, budget) are apart: [engine]."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    recipe: Literal["self-instruct", "topics", "conversation", "evol"] = Field(
        description="self-instruct (seed tasks), topics (keywords), conversation (keywords, several turns), "
                    "evol (seed tasks or a run's examples, evolved into harder ones)")
    seeds: Path = Field(description="seed tasks (self-instruct, JSONL) or keywords (topics, conversation: one per line)")
    n: int = Field(gt=0, description="examples to KEEP (after filters and dedup)")
    lang: Literal["ko", "en"] | None = Field(default=None, description="language of the data; None: from the seeds")
    structured: Literal["auto", "yes", "no"] = Field(
        default="auto", description="json_schema structured output: yes, no (parse text), auto (by model)")
    eval: list[Path] = Field(default_factory=list,
                             description="evaluation question files (MT-Bench JSONL) to decontaminate against")
    prompts: Path | None = Field(default=None, description="folder of edited prompt templates (<lang>/<name>.txt)")
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int = Field(default=0, description="seed of the sampling of seeds, keywords and examples")

    # self-instruct
    tasks_per_request: int = Field(default=8, ge=1, le=50, description="new tasks asked for per request")
    seed_examples: int = Field(default=3, ge=1, le=20, description="seed tasks shown per request")
    generated_examples: int = Field(
        default=2, ge=0, le=20, description="already generated tasks shown per request, next to the seeds (Self-Instruct)")
    instruct_max_tokens: int | None = Field(default=None, ge=16, description="max_tokens per request; None: 400 per task")

    # topics
    keywords_per_request: int = Field(default=3, ge=1, le=50)
    questions_per_keyword: int = Field(default=5, ge=1, le=50)
    answers_per_request: int = Field(default=3, ge=1, le=20, description="questions answered per request")
    avoid_questions: int = Field(
        default=5, ge=0, le=50, description="earlier questions of a keyword shown when it comes round again")
    questions_max_tokens: int | None = Field(default=None, ge=16, description="None: 80 per question asked")
    answers_max_tokens: int | None = Field(default=None, ge=16, description="None: 1200 per answer asked")
    grounding: Literal["none", "naver"] = Field(default="none", description="naver: search snippets in the answer prompt")

    # evol (Evol-Instruct: evolve, then answer)
    evolve_per_request: int = Field(default=4, ge=1, le=20, description="parent instructions evolved per request")
    evolve_max_tokens: int | None = Field(default=None, ge=16, description="None: 250 per instruction asked")

    # conversation (the topics stages, then follow-ups)
    turns: int = Field(default=2, ge=2, le=8, description="user turns per conversation (MT-Bench has 2)")
    followups_max_tokens: int | None = Field(default=None, ge=16, description="None: 1400 (a question and its answer)")

    # when to stop, and what the dry run assumes
    min_yield: float = Field(default=0.05, ge=0, lt=1,
                             description="stop when the last yield_window requests kept less than this share")
    yield_window: int = Field(default=30, ge=1, description="requests the yield is measured over")
    assumed_yield: float = Field(default=0.7, gt=0, le=1,
                                 description="share of asked items kept, until this run has measured it")
    # The dry run's range before anything is measured: real runs have kept from about a quarter
    # (strict filters, a model that repeats itself) to nearly all of what they asked for; the low end
    # leaves room below that.
    assumed_yield_low: float = Field(default=0.2, gt=0, le=1, description="the dry run's low end of assumed_yield")
    assumed_yield_high: float = Field(default=0.9, gt=0, le=1, description="the dry run's high end of assumed_yield")

    @model_validator(mode="after")
    def _yield_range(self) -> GenerateSettings:
        if self.assumed_yield_low > self.assumed_yield_high:
            raise ValueError(f"assumed_yield_low {self.assumed_yield_low} is above assumed_yield_high "
                             f"{self.assumed_yield_high}: swap them")
        return self

    @property
    def yield_range(self) -> tuple[float, float]:
        """The dry run's assumed range, widened to hold assumed_yield."""
        return min(self.assumed_yield_low, self.assumed_yield), max(self.assumed_yield_high, self.assumed_yield)

    @field_validator("prompts")
    @classmethod
    def _prompts_dir(cls, v: Path | None) -> Path | None:
        if v is not None and not Path(v).is_dir():
            raise ValueError(f"no such folder: {v} (it holds ko/*.txt and en/*.txt templates)")
        return v

    def max_tokens(self, stage: str) -> int:
        if stage == "self-instruct":
            return self.instruct_max_tokens or 400 * self.tasks_per_request
        if stage == "questions":
            return self.questions_max_tokens or 80 * self.keywords_per_request * self.questions_per_keyword + 100
        if stage == "answers":
            return self.answers_max_tokens or 1200 * self.answers_per_request
        if stage == "evolve":
            return self.evolve_max_tokens or 250 * self.evolve_per_request + 100
        if stage == "followups":
            return self.followups_max_tokens or 1400
        raise ValueError(f"unknown stage {stage!r}")
