"""A curation's scores (`RUN/curation/NAME/scores.jsonl`, one line per graded example), and the
subset of a run's kept examples an export takes: all of them, those a curation scored at or above
a bar, or those a file of ids names.

A score line, as the curation (`judge curate`, another branch's judge/curation/records.py) writes it:

    {"example_id": "si-...-0", "curation": "gpt-4o-v1", "status": "scored",   # | unscored | skipped
     "overall": 4.5,                                          # 1-5 in half points; scored only
     "criteria": {"accuracy": 5, "helpfulness": 4, ...},      # 1-5 integers
     "rationale": "...", "error": null, "judge_model": "gpt-4o", "rubric_version": "v1",
     "cost_usd": 0.0012, ...}

Only the fields read here are declared (`id` is read as `example_id` too); the others are kept, as
in every record of schemas, so a newer file still loads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from factory.errors import ExportError
from schemas import Example, JsonlError, RunFolder, iter_jsonl


class CurationScore(BaseModel):
    """One example's grade in a curation."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    example_id: str = Field(validation_alias=AliasChoices("example_id", "id"))
    status: str = ""  # scored | unscored (no readable reply: never a number) | skipped (a prefilter); "": by overall
    error: str | None = None
    judge_model: str = ""
    rubric_version: str = ""
    criteria: dict[str, int] = Field(default_factory=dict)
    overall: float | None = None  # None: not scored (see status)
    rationale: str = ""
    cost_usd: float | None = None

    @property
    def state(self) -> str:
        """scored, unscored or skipped (a file without `status` says it by `overall`)."""
        return self.status or ("scored" if self.overall is not None else "unscored")


def read_scores(run: RunFolder, name: str) -> dict[str, CurationScore]:
    """example id -> its score in curation NAME (the last line wins for an id graded twice)."""
    path = run.curation_scores(name)
    if not path.is_file():
        have = ", ".join(run.curation_names()) or "none"
        raise ExportError(f"no curation {name!r} in {run} (no {path}); the run's curations: {have}")
    try:
        return {s.example_id: s for s in iter_jsonl(path, CurationScore)}
    except (JsonlError, ValidationError) as e:
        raise ExportError(f"{e}; fix or remove that line of {path}") from None


def read_ids(path: Path) -> list[str]:
    """The ids of a file, one a line (blank lines and lines starting with # left out)."""
    if not path.is_file():
        raise ExportError(f"no ids file {path}: give a text file with one example id a line")
    ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    ids = [i for i in ids if i and not i.startswith("#")]
    if not ids:
        raise ExportError(f"{path} holds no example ids (one a line)")
    return ids


def kept_examples(run: RunFolder) -> Iterator[Example]:
    """The run's kept examples (a torn last line, from a crash, is skipped)."""
    try:
        yield from iter_jsonl(run.examples, Example)
    except JsonlError as e:
        raise ExportError(f"{e}; fix or remove that line, then export again") from None


def select(examples: Iterable[Example], *, scores: dict[str, CurationScore] | None = None,
           min_score: float | None = None, ids: list[str] | None = None) -> Iterator[Example]:
    """The examples an export takes, in the run's order."""
    wanted = set(ids) if ids is not None else None
    for example in examples:
        if wanted is not None and example.id not in wanted:
            continue
        if scores is not None:
            score = scores.get(example.id)
            if score is None or score.overall is None or (min_score is not None and score.overall < min_score):
                continue
        yield example


__all__ = ["CurationScore", "kept_examples", "read_ids", "read_scores", "select"]
