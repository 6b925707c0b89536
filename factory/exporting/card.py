"""The dataset card of an export: README.md beside the exported file, in the Hugging Face Hub's
dataset-card layout (YAML metadata between `---` lines, then Markdown).

It says where the data came from and what was done to it, from the run's own files: the source
model and recipe (config.toml), the counts (kept, exported, rejected by reason), the filters and the
near-duplicate threshold, the evaluation sets it was decontaminated against, what it cost (the
ledger) and when it was exported. A figure the run does not hold is written as not recorded,
never guessed. No licence is claimed: the data's terms follow from the source model's provider.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.engine import usd
from factory.exporting.formats import Format
from factory.quality import REASON_CONTAMINATION, REASON_DUPLICATE
from factory.quality.filters import FILTER_NAMES


@dataclass
class CardFacts:
    """What the card states; gathered by run.py from the run folder."""

    run: str
    data_file: str  # the exported file's name, beside the card
    format: Format
    exported: int
    kept: int
    selection: str  # which examples, in words
    languages: list[str]
    config: dict[str, Any]  # the run's config.toml
    rejected: Counter[str] = field(default_factory=Counter)
    generation_usd: float | None = None  # the generation stages' spend (None: a price is unknown)
    generation_requests: int = 0
    run_usd: float | None = None  # every stage of the run
    exported_usd: float | None = None  # the exported examples' shares of their requests
    exported_unpriced: int = 0  # exported examples without a recorded cost
    simulated: bool = False
    sample: dict[str, Any] | None = None  # the first exported row
    date: str = ""  # the export's date (UTC)


def _size_category(n: int) -> str:
    """The Hub's size_categories bucket."""
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < bound:
            return name
    return "n>10M"


def _yaml(facts: CardFacts) -> str:
    q = json.dumps  # a JSON string is a valid YAML scalar, whatever it holds
    lines = ["---"]
    if facts.languages:
        lines += ["language:", *(f"- {q(lang)}" for lang in facts.languages)]
    lines += [
        f"pretty_name: {q(f'instruct-factory run {facts.run} ({facts.format.name})')}",
        "size_categories:", f"- {_size_category(facts.exported)}",
        "task_categories:", "- text-generation",
        "tags:", "- synthetic", "- instruction-tuning", "- sft", "- instruct-factory",
        "configs:", "- config_name: default", "  data_files:", "  - split: train", f"    path: {q(facts.data_file)}",
        "---",
    ]
    return "\n".join(lines)


def _source(facts: CardFacts) -> tuple[str, str, str, str]:
    """(model, recipe, seeds, how) from the run's settings: a generate run, or an import."""
    c = facts.config
    if "generate" in c:
        g = c["generate"]
        return (str(c.get("engine", {}).get("model", "not recorded")), str(g.get("recipe", "not recorded")),
                str(g.get("seeds", "not recorded")), "generated with `just generate`")
    if "import" in c:
        i = c["import"]
        return (str(i.get("source_model", "unknown")), "import", str(i.get("source", "not recorded")),
                "imported with `python -m factory import`")
    return ("not recorded", "not recorded", "not recorded", "settings not recorded (no config.toml)")


def _quality(facts: CardFacts) -> tuple[list[str], list[str]]:
    """(filter lines, dedup and decontamination lines)."""
    c = facts.config
    imported = c.get("import", {}) if "generate" not in c else {}
    filters = imported.get("filters", c.get("filters", {}))
    dedup = imported.get("dedup_settings", c.get("dedup", {}))
    filtered = imported.get("filter", True)
    deduped = imported.get("dedup", True)
    disabled = set(filters.get("disabled", []))
    out = []
    if not filters and not imported:
        out.append("- the filter settings are not recorded in config.toml")
    elif not filtered:
        out.append("- the quality filters were switched off (`--no-filter`)")
    else:
        on = [name for name in FILTER_NAMES if name not in disabled]
        out.append(f"- filters applied: {', '.join(f'`{n}`' for n in on)}"
                   + (f" (switched off: {', '.join(sorted(disabled))})" if disabled else ""))
        bounds = {k: v for k, v in filters.items() if k.endswith("_chars") or k.endswith("_share") or k == "lang"}
        if bounds:
            out.append("- their bounds: " + ", ".join(f"{k} = {v}" for k, v in bounds.items()))
    near = []
    if not deduped:
        near.append("- near-duplicates were not removed (`--no-dedup`)")
    elif dedup:
        near.append(f"- near-duplicates removed at an exact Jaccard similarity of {dedup.get('threshold')} or more "
                    f"between character {dedup.get('shingle_size')}-gram sets (Hangul as jamo) of the "
                    f"{dedup.get('text', 'instruction')}, against the seeds and every earlier kept example "
                    f"(candidates from MinHash LSH, index `{dedup.get('index', 'bands')}`)")
    else:
        near.append("- the near-duplicate settings are not recorded in config.toml")
    evals = c.get("generate", {}).get("eval") or ([imported["eval_file"]] if imported.get("eval_file") else [])
    if evals:
        near.append("- decontaminated against these evaluation sets (an example near one of their questions is "
                    f"dropped as `{REASON_CONTAMINATION}`): " + ", ".join(f"`{Path(str(e)).name}`" for e in evals))
    else:
        near.append("- not decontaminated against any evaluation set (no `--eval` was given)")
    near.append(f"- dropped as near-duplicates: {facts.rejected.get(REASON_DUPLICATE, 0):,}; "
                f"as contamination: {facts.rejected.get(REASON_CONTAMINATION, 0):,}")
    return out, near


def _cost_lines(facts: CardFacts) -> list[str]:
    if not facts.generation_requests and facts.run_usd is None:
        return ["- not recorded: the run has no ledger (imported data, or a ledger that was removed)"]
    per = None if facts.generation_usd is None or not facts.kept else facts.generation_usd / facts.kept
    lines = [f"- generation: {usd(facts.generation_usd)} over {facts.generation_requests:,} requests, "
             f"{usd(per)} per kept example",
             f"- the whole run (every stage: generation, answers, judging): {usd(facts.run_usd)}"]
    exported = usd(facts.exported_usd)
    if facts.exported_unpriced:
        exported += f" ({facts.exported_unpriced:,} exported examples have no recorded cost)"
    lines.append(f"- the exported examples' shares of their requests: {exported}")
    return lines


def _shorten(value: Any, limit: int = 300) -> Any:
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…"
    if isinstance(value, list):
        return [_shorten(v, limit) for v in value]
    if isinstance(value, dict):
        return {k: _shorten(v, limit) for k, v in value.items()}
    return value


def _code(value: Any) -> str:
    """A setting as inline code in a table cell (no backtick, bar or line break can break out)."""
    text = " ".join(str(value).replace("`", "'").replace("|", "/").split())
    return f"`{text}`"


def dataset_card(facts: CardFacts) -> str:
    model, recipe, seeds, how = _source(facts)
    filters, near = _quality(facts)
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in facts.rejected.most_common()) or "none"
    f = facts.format
    body = [
        _yaml(facts), "",
        f"# {facts.run}: {facts.exported:,} instruction examples ({f.name} format)", "",
        f"Exported on {facts.date} from the instruct-factory run `{facts.run}`: {how}. "
        "This card was written with the file and states what the run's own files record.", "",
    ]
    if facts.simulated:
        body += ["> **Simulated data.** These texts come from instruct-factory's local simulator, not from a "
                 "model: they exercise a pipeline and are not for training a model you mean to use.", ""]
    body += [
        "## Source", "",
        "| | |", "|---|---|",
        f"| source model | {_code(model)} |", f"| recipe | {_code(recipe)} |",
        f"| seeds (or imported file) | {_code(seeds)} |",
        f"| languages | {', '.join(facts.languages) or 'not recorded'} |", f"| exported | {facts.date} |", "",
        "## Counts", "",
        f"- kept by the run: {facts.kept:,}", f"- exported: {facts.exported:,} ({facts.selection})",
        f"- rejected by the run: {sum(facts.rejected.values()):,} ({reasons})", "",
        "## Filters", "", *filters, "",
        "## Deduplication and decontamination", "", *near, "",
        "## Cost", "", *_cost_lines(facts), "",
        "## Format", "",
        f"`{facts.data_file}`, one example a row, columns: {', '.join(f'`{c}`' for c in f.columns)}. "
        f"Read by {f.readers}.", "",
    ]
    if facts.sample is not None:
        sample = json.dumps(_shorten(facts.sample), ensure_ascii=False, indent=2)
        fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", sample)), default=0))
        body += ["The first row (texts shortened):", "", f"{fence}json", sample, fence, ""]
    kind = "parquet" if facts.data_file.endswith(".parquet") else "json"
    body += [
        "## Use", "", "```python", "from datasets import load_dataset", "",
        f'dataset = load_dataset("{kind}", data_files="{facts.data_file}", split="train")', "```", "",
        "## Licence", "",
        "None is stated here: the terms of the source model's provider govern its outputs; set a licence "
        "before publishing.", "",
    ]
    return "\n".join(body)


__all__ = ["CardFacts", "dataset_card"]
