"""What `python -m judge grade` grades and how: the `[judge]` settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from factory.batch import BatchSettings
from factory.engine import EngineSettings, load_settings
from judge.errors import GradeError

STAGE = "judge"
SECTION = "judge"


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


def load_judge_settings(config: Path | None, overrides: dict[str, Any], *,
                        given_as: str = "command line") -> JudgeSettings:
    """The `[judge]` section of `config` with `overrides` on top (None: not given), checked."""
    if config is None and overrides.get("mode") is None:
        raise GradeError("no grading mode: give --mode single, pair or reference")
    if config is None and overrides.get("judge_model") is None:
        raise GradeError("no judge model: give --judge-model, e.g. gpt-4o")
    return load_settings(config, overrides, model=JudgeSettings, section=SECTION, section_only=True, given_as=given_as)
