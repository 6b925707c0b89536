"""The near-duplicate check of a run: what of an example is compared, the rejection record, and
the index rebuilt from what the run already kept."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from factory.quality.deduper import Deduper, DupCheck
from factory.quality.settings import REASON_CONTAMINATION, REASON_DUPLICATE, DedupSettings
from schemas import Example, Rejected, RunFolder, iter_jsonl


def example_text(example: Example, text: Literal["instruction", "prompt"] = "instruction") -> str:
    """What of an example is compared for near-duplicates."""
    return example.instruction if text == "instruction" else example.prompt()


def rejection(example_id: str, verdict: DupCheck, text: str = "", request_key: str = "") -> Rejected:
    """The `rejected.jsonl` record for a duplicate (or an eval-set near-duplicate)."""
    if not verdict.is_dup:
        raise ValueError("rejection() of a text that is not a duplicate")
    reason = REASON_CONTAMINATION if verdict.kind == "eval" else REASON_DUPLICATE
    return Rejected(id=example_id, reason=reason, detail=verdict.describe(), text=text, request_key=request_key)


def load_run_deduper(
    run: str | Path | RunFolder,
    settings: DedupSettings | None = None,
    *,
    seeds: Iterable[tuple[str, str]] = (),
    eval_items: Iterable[tuple[str, str]] = (),

) -> Deduper:
    """A deduper holding the seeds, the eval questions and every example already kept in the run.

    Rebuilt from `examples.jsonl` on every start; a torn last line from a crash is skipped, as the
    run itself skips it.
    """
    deduper = Deduper(settings)
    deduper.add_many(seeds, kind="seed")
    deduper.add_many(eval_items, kind="eval")
    path = RunFolder(run).examples
    field = deduper.settings.text
    deduper.add_many(((ex.id, example_text(ex, field)) for ex in iter_jsonl(path, Example)), kind="kept")
    return deduper
