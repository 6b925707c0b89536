"""One export of a run (`python -m factory export`, `factory.export`): check everything first, then
write the file and its dataset card. An unknown format, an output that exists (without `force`), a
run with nothing kept or a selection that holds nothing is an ExportError, and nothing is written."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from factory.engine import Ledger
from factory.errors import ExportError
from factory.exporting.card import CardFacts, dataset_card
from factory.exporting.curated import kept_examples, read_ids, read_scores, select
from factory.exporting.formats import FORMATS, Format
from factory.exporting.writing import SUFFIXES, write_rows, write_text
from factory.recipes.self_instruct import STAGE as SELF_INSTRUCT_STAGE
from factory.recipes.topics import ANSWERS as TOPICS_ANSWERS
from factory.recipes.topics import QUESTIONS as TOPICS_QUESTIONS
from factory.simulator.text import MARKER as SIMULATED_MARKER
from schemas import Example, JsonlError, Rejected, RunFolder, iter_jsonl

CARD_NAME = "README.md"  # the Hub reads a dataset's card from README.md
GENERATION_STAGES = (SELF_INSTRUCT_STAGE, TOPICS_QUESTIONS, TOPICS_ANSWERS)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote. `str(result)` is the command's closing line."""

    run: Path
    path: Path  # the data file
    card: Path  # README.md beside it
    format: str
    columns: tuple[str, ...]
    rows: int
    kept: int  # the run's kept examples (the export may take a subset)
    selection: str

    def __str__(self) -> str:
        return (f"exported {self.rows:,} of {self.kept:,} kept examples of {self.run} ({self.selection}) as "
                f"{self.format} to {self.path}, columns {', '.join(self.columns)}; dataset card: {self.card}")


def _checked(run: Path, format: str, out: Path, force: bool) -> tuple[RunFolder, Format, Path]:
    if format not in FORMATS:
        raise ExportError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
    if out.suffix not in SUFFIXES:
        raise ExportError(f"--out {out}: name a .jsonl or a .parquet file (the suffix picks the file format)")
    if not run.is_dir():
        raise ExportError(f"no run folder {run}; pass --run runs/NAME of an existing run")
    card = out.parent / CARD_NAME
    if out.exists() and not force:
        raise ExportError(f"{out} exists; pass --force to replace it (and the dataset card {CARD_NAME} beside it)")
    if card.exists() and not force:
        raise ExportError(f"{card} exists (the card of another export?); export to another folder, or pass --force "
                          "to replace it")
    if out.is_dir():
        raise ExportError(f"--out {out} is a folder; name the file to write")
    return RunFolder(run), FORMATS[format], card


def _selection(folder: RunFolder, curation: str | None, min_score: float | None, ids: Path | None,
               ) -> tuple[dict, str]:
    """The arguments of `select`, and the selection in words for the card."""
    if min_score is not None and curation is None:
        raise ExportError("--min-score needs --curation NAME: the curation whose scores it compares")
    kwargs: dict = {}
    words = []
    if curation is not None:
        kwargs["scores"] = read_scores(folder, curation)
        kwargs["min_score"] = min_score
        bar = f" with an overall score of {min_score} or more" if min_score is not None else ""
        words.append(f"the examples curation {curation!r} scored{bar}")
    if ids is not None:
        kwargs["ids"] = read_ids(ids)
        words.append(f"the {len(kwargs['ids']):,} ids of {ids.name}")
    return kwargs, " and ".join(words) or "all kept examples"


def _ledger_figures(folder: RunFolder) -> tuple[float | None, int, float | None]:
    """(generation spend, generation requests, the whole run's spend); None where a price is unknown."""
    if not folder.ledger.is_file():
        return None, 0, None
    with Ledger(folder.ledger) as ledger:
        rows = ledger.totals_by_stage_model()
    generation = [r for r in rows if r.stage in GENERATION_STAGES]

    def total(rs: list) -> float | None:
        return None if any(r.cost_usd is None for r in rs) else sum(r.cost_usd for r in rs)

    return total(generation), sum(r.requests for r in generation), total(rows) if rows else None


@dataclass
class _Chosen:
    """What one pass over the chosen examples found (the file is written in a second pass, so that
    memory stays flat however large the run; the first checks every row before a byte is written)."""

    n: int = 0
    first: dict | None = None
    languages: set[str] = field(default_factory=set)
    usd: float | None = None
    unpriced: int = 0
    simulated: bool = False

    def add(self, example: Example, row: dict) -> None:
        self.n += 1
        self.first = row if self.first is None else self.first
        if example.lang:
            self.languages.add(example.lang)
        cost = example.provenance.cost_usd if example.provenance else None
        if cost is None:
            self.unpriced += 1
        else:
            self.usd = (self.usd or 0.0) + cost
        self.simulated = self.simulated or SIMULATED_MARKER in example.output


def export_run(run: str | Path, *, format: str, out: str | Path, force: bool = False, curation: str | None = None,
               min_score: float | None = None, ids: str | Path | None = None) -> ExportResult:
    """Write RUN's kept examples (or the chosen subset) to OUT in FORMAT, and README.md beside it."""
    run, out = Path(run), Path(out)
    folder, fmt, card = _checked(run, format, out, force)
    kwargs, selection = _selection(folder, curation, min_score, Path(ids) if ids is not None else None)
    kept = sum(1 for _ in kept_examples(folder))
    if kept == 0:
        raise ExportError(f"{run} has no kept examples ({folder.examples} is missing or empty): generate some first "
                          f"(just generate --run {run} ...) or import them (python -m factory import --run {run} ...)")
    chosen = _Chosen()
    for example in select(kept_examples(folder), **kwargs):
        chosen.add(example, fmt.row(example))
    if not chosen.n:
        raise ExportError(f"the selection ({selection}) holds none of the {kept:,} kept examples of {run}; "
                          "lower --min-score or check the ids")
    out.parent.mkdir(parents=True, exist_ok=True)
    n = write_rows(out, fmt, (fmt.row(e) for e in select(kept_examples(folder), **kwargs)))
    write_text(card, dataset_card(_facts(folder, fmt, out, chosen, kept, selection)))
    return ExportResult(run=run, path=out, card=card, format=fmt.name, columns=fmt.columns, rows=n, kept=kept,
                        selection=selection)


def _facts(folder: RunFolder, fmt: Format, out: Path, chosen: _Chosen, kept: int, selection: str) -> CardFacts:
    try:
        rejected = Counter(r.reason for r in iter_jsonl(folder.rejected, Rejected))
    except JsonlError as e:
        raise ExportError(f"{e}; fix or remove that line, then export again") from None
    generation_usd, generation_requests, run_usd = _ledger_figures(folder)
    return CardFacts(
        run=folder.root.name, data_file=out.name, format=fmt, exported=chosen.n, kept=kept, selection=selection,
        languages=sorted(chosen.languages), config=folder.read_config(), rejected=rejected,
        generation_usd=generation_usd, generation_requests=generation_requests, run_usd=run_usd,
        exported_usd=chosen.usd, exported_unpriced=chosen.unpriced, simulated=chosen.simulated, sample=chosen.first,
        date=dt.datetime.now(dt.timezone.utc).date().isoformat(),
    )


__all__ = ["CARD_NAME", "ExportResult", "export_run"]
