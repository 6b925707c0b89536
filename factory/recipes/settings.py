"""The `generate` command's settings (the `[generate]` section of a settings file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class GenerateSettings(BaseModel):
    """What to generate and how. The engine's settings (model, limits, budget) are apart: [engine]."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    recipe: Literal["self-instruct", "topics"] = Field(description="self-instruct (seed tasks) or topics (keywords)")
    seeds: Path = Field(description="seed tasks (self-instruct, JSONL) or keywords (topics, one per line)")
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

    # when to stop, and what the dry run assumes
    min_yield: float = Field(default=0.05, ge=0, lt=1,
                             description="stop when the last yield_window requests kept less than this share")
    yield_window: int = Field(default=30, ge=1, description="requests the yield is measured over")
    assumed_yield: float = Field(default=0.7, gt=0, le=1,
                                 description="share of asked items kept, until this run has measured it")

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
        raise ValueError(f"unknown stage {stage!r}")
