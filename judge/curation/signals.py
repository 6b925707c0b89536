"""Signals that cost nothing, stored beside each LLM grade, and the prefilter they allow.

- `chars`: the instruction's and the output's length in characters;
- `repeated_3grams`: the share of the output's word 3-grams that occur more than once (a loop
  the generation filters let through scores high; ordinary prose stays under about 0.1);
- `duplicates`: how many near-duplicates of this example generation dropped (from the run's
  rejected.jsonl): a large cluster is a template the model kept writing.

`--prefilter` skips the LLM for an example these signals already condemn (`prefilter_reason`: a loop,
an output that repeats the instruction or holds no letter; a short output is no fault, "Negative"
answers a classification task):
such an example is recorded `skipped` with the reason, is not selected, and costs nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from factory.quality import REASON_DUPLICATE
from schemas import Example, Rejected

# The share of repeated output 3-grams from which an example is not worth a judge's request.
MAX_REPEATED_3GRAMS = 0.5
# factory.quality's rejection detail for a duplicate of a kept example: "duplicate of ID (similarity 0.91)".
_DUPLICATE_OF = re.compile(r"^duplicate of (\S+) \(similarity")


def repeated_3gram_share(text: str) -> float:
    words = text.split()
    grams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
    if not grams:
        return 0.0
    counts = Counter(grams)
    return sum(n for n in counts.values() if n > 1) / len(grams)


def duplicate_counts(rejected: Iterable[Rejected]) -> Counter[str]:
    """Kept example id -> near-duplicates of it that generation dropped."""
    counts: Counter[str] = Counter()
    for r in rejected:
        if r.reason == REASON_DUPLICATE:
            m = _DUPLICATE_OF.match(r.detail)
            if m:
                counts[m.group(1)] += 1
    return counts


def signals_of(example: Example, duplicates: Counter[str]) -> dict[str, Any]:
    return {"instruction_chars": len(example.instruction), "output_chars": len(example.output),
            "repeated_3grams": round(repeated_3gram_share(example.output), 3),
            "duplicates": duplicates.get(example.id, 0)}


def prefilter_reason(signals: dict[str, Any], example: Example) -> str | None:
    """Why the LLM need not see this example, or None."""
    if signals["repeated_3grams"] >= MAX_REPEATED_3GRAMS:
        return f"{signals['repeated_3grams']:.0%} of the output's word 3-grams repeat (a loop)"
    if not any(c.isalnum() for c in example.output):
        return "the output has no letter or digit"
    if example.output.strip() == example.instruction.strip():
        return "the output repeats the instruction"
    return None


__all__ = ["MAX_REPEATED_3GRAMS", "duplicate_counts", "prefilter_reason", "repeated_3gram_share", "signals_of"]
