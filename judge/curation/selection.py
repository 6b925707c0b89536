"""The selection of a curation: the best of a run's kept examples, written as a run folder of its
own that `just train` takes as it takes any run, with provenance back to the graded run.

Rules: `min` keeps every example graded at or above a bar (default 4.5, as AlpaGasus); `top`
keeps a share of the scored examples, best first, ties in the run's order. Unscored and skipped
examples are never selected. The selection folder holds `examples.jsonl` (in the run's order) and
`config.toml` [curated_from]; writing it again with the same rule rewrites it, and a folder that
holds anything else is refused rather than overwritten.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judge.curation.items import load_examples, read_done
from judge.curation.rubric import RUBRIC_VERSION, example_digest
from judge.curation.settings import CurateSettings
from judge.errors import CurateError
from schemas import Example, RunFolder, iter_jsonl, write_jsonl

PROVENANCE = "curated_from"  # the selection's config.toml table


@dataclass
class Selection:
    folder: Path
    rule: str  # "min" | "top"
    value: float  # the bar, or the share
    kept: int
    scored: int
    examples: int
    lowest_kept: float | None
    unchanged: bool  # the folder already held this selection

    def lines(self) -> list[str]:
        what = f"overall >= {self.value:g}" if self.rule == "min" else f"the best {self.value:.0%} of the scored"
        bar = f", lowest kept {self.lowest_kept:g}" if self.lowest_kept is not None else ""
        note = " (unchanged)" if self.unchanged else ""
        return [f"selected {self.kept} of {self.examples} examples ({what}; {self.scored} scored{bar}){note}",
                f"selection: {self.folder}; train on it with: just train --run {self.folder}"]


def default_folder(run: RunFolder, name: str, rule: str, value: float) -> Path:
    suffix = f"min{value:g}" if rule == "min" else f"top{round(value * 100):d}"
    return run.root.parent / f"{run.root.name}-{name}-{suffix}"


def choose(examples: list[Example], scores: dict[str, Any], rule: str, value: float) -> list[Example]:
    """The selected examples, in the run's order."""
    scored = [(i, ex, scores[ex.id].overall) for i, ex in enumerate(examples)
              if ex.id in scores and scores[ex.id].state == "scored" and scores[ex.id].overall is not None]
    if rule == "min":
        chosen = [t for t in scored if t[2] >= value]
    else:
        n = min(len(scored), max(1, math.ceil(value * len(scored) - 1e-9))) if scored else 0
        chosen = sorted(scored, key=lambda t: (-t[2], t[0]))[:n]
    return [ex for _, ex, _ in sorted(chosen, key=lambda t: t[0])]


def write_selection(run: RunFolder, name: str, settings: CurateSettings) -> Selection:
    rule, value = settings.rule
    examples = load_examples(run)
    current = {ex.id: example_digest(ex) for ex in examples}
    scores = {s.example_id: s for s in read_done(run.curation_scores(name))
              if (s.model_extra or {}).get("example_sha") in (None, current.get(s.example_id))}
    chosen = choose(examples, scores, rule, value)
    out = RunFolder(settings.out if settings.out is not None else default_folder(run, name, rule, value))
    if out.root.resolve() == run.root.resolve():
        raise CurateError(f"--out {out} is the graded run itself; give a new folder for the selection")
    provenance = {"run": str(run.root.resolve()), "curation": name, "judge_model": settings.judge_model,
                  "rubric_version": RUBRIC_VERSION, "rule": rule, "value": value, "kept": len(chosen),
                  "scored": sum(1 for s in scores.values() if s.state == "scored"), "examples": len(examples)}
    unchanged = _check_target(out, provenance, chosen)
    if not unchanged:
        write_jsonl(out.examples, chosen)
        out.write_config_section(PROVENANCE, provenance)
    kept_scores = [scores[ex.id].overall for ex in chosen]
    return Selection(out.root, rule, value, len(chosen), provenance["scored"], len(examples),
                     min(kept_scores) if kept_scores else None, unchanged)


def _check_target(out: RunFolder, provenance: dict[str, Any], chosen: list[Example]) -> bool:
    """True: `out` already holds exactly this selection. Raises when it holds something else."""
    if not out.root.exists() or not any(out.root.iterdir()):
        return False
    before = out.config_section(PROVENANCE)
    same_source = all(before.get(k) == provenance[k] for k in ("run", "curation", "rule", "value"))
    if not same_source:
        was = (f"the selection {before.get('rule')} {before.get('value')} of curation {before.get('curation')!r} "
               f"of {before.get('run')}" if before else "a folder that is not a selection")
        raise CurateError(f"{out} already holds {was}; give --out NEW_FOLDER or remove it")
    held = [ex.id for ex in iter_jsonl(out.examples, Example)] if out.examples.is_file() else []
    if held == [ex.id for ex in chosen]:
        return True
    if out.train_dir.exists():
        raise CurateError(f"{out} was trained on another selection of these grades ({len(held)} examples, now "
                          f"{len(chosen)}); give --out NEW_FOLDER so that its training keeps the data it used")
    return False


__all__ = ["PROVENANCE", "Selection", "choose", "default_folder", "write_selection"]
