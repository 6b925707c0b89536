"""What `python -m judge curate` grades and how it selects: the `[curate]` settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from factory.batch import BatchSettings
from factory.engine import EngineSettings, load_settings
from judge.curation.rubric import OVERALL, RUBRIC_VERSION
from judge.errors import CurateError

STAGE = "curate"  # the ledger's stage: --max-cost covers it, the cost report shows it apart
SECTION = "curate"  # [curate] of a settings file; a run records [curation.NAME]
DEFAULT_MIN_SCORE = 4.5  # AlpaGasus kept the examples its judge rated 4.5 or more


class CurateSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    judge_model: str = Field(min_length=1, description="the judge, e.g. gpt-4o")
    name: str | None = Field(default=None, description="the curation's folder under RUN/curation/; "
                                                       "None: JUDGE-MODEL-RUBRIC (e.g. gpt-4o-v1)")
    structured: Literal["auto", "yes", "no"] = Field(default="auto", description="schema-constrained replies")
    retries: int = Field(default=2, ge=0, le=10, description="more tries for a reply without a readable grade")
    lang: Literal["en", "ko"] | None = Field(default=None, description="prompt and rationale language; None: each example's")
    max_tokens: int = Field(default=300, ge=32, le=8192, description="max_tokens of a grading reply")
    prefilter: bool = Field(default=False, description="skip the LLM for examples the free signals condemn")
    keep_min_score: float | None = Field(default=None, ge=1, le=5, description="select overall >= this")
    keep_top: float | None = Field(default=None, gt=0, le=1, description="select this share, best first")
    out: Path | None = Field(default=None, description="the selection's run folder; None: beside the run")
    batch: bool = Field(default=False, description="through the Batch API (half price, within 24 h)")

    @model_validator(mode="after")
    def _one_rule(self) -> CurateSettings:
        if self.keep_min_score is not None and self.keep_top is not None:
            raise ValueError("give --keep-min-score or --keep-top, not both")
        if self.keep_min_score is not None and self.keep_min_score not in OVERALL:
            raise ValueError(f"--keep-min-score {self.keep_min_score:g}: grades are 1 to 5 in half points")
        return self

    @property
    def curation(self) -> str:
        return self.name or re.sub(r"[^A-Za-z0-9._-]+", "-", f"{self.judge_model}-{RUBRIC_VERSION}").strip("-.")

    @property
    def rule(self) -> tuple[str, float]:
        """("min", 4.5) or ("top", 0.2): what the selection keeps."""
        if self.keep_top is not None:
            return "top", self.keep_top
        return "min", DEFAULT_MIN_SCORE if self.keep_min_score is None else self.keep_min_score


class ResolvedCuration(CurateSettings):
    """What `RUN/config.toml` [curation.NAME] records: the settings as resolved, and the engine's."""

    rubric_version: str = RUBRIC_VERSION
    engine: EngineSettings
    batch_api: BatchSettings | None = None


def load_curate_settings(config: Path | None, overrides: dict[str, Any]) -> CurateSettings:
    """The `[curate]` section of `config` with `overrides` on top (None: not given), checked."""
    if config is None and overrides.get("judge_model") is None:
        raise CurateError("no judge model: give --judge-model, e.g. gpt-4o")
    return load_settings(config, overrides, model=CurateSettings, section=SECTION, section_only=True)


__all__ = ["DEFAULT_MIN_SCORE", "SECTION", "STAGE", "CurateSettings", "ResolvedCuration", "load_curate_settings"]
