"""How near is a duplicate: the settings of the near-duplicate check and the LSH band layout."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Chosen by measurement (bench/dedup.py, bench/results/dedup.json): of the thresholds that keep
# recall and precision on the benchmark's planted near-duplicates and template-sharing
# non-duplicates at 0.95 or more, the one that agrees best with Alpaca's ROUGE-L > 0.7 rule on
# graded English pairs. Lower thresholds catch more of what Alpaca's rule drops (it also drops
# texts that share a long template), at the price of dropping such template siblings.
DEFAULT_THRESHOLD = 0.55
# 3 characters over jamo, about one Hangul syllable or half an English word; 4 and 5 gave the same
# trade-off between Alpaca's rule and template siblings, shifted to lower thresholds.
DEFAULT_SHINGLE_SIZE = 3

REASON_DUPLICATE = "duplicate"
REASON_CONTAMINATION = "contamination"

EntryKind = Literal["kept", "seed", "eval"]


class DedupSettings(BaseModel):
    """How near is a duplicate. Exact Jaccard of the character-shingle sets >= `threshold`."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(
        default=DEFAULT_THRESHOLD, gt=0.0, le=1.0,
        description="exact Jaccard similarity of the shingle sets at or above which a text is a duplicate",
    )
    shingle_size: int = Field(
        default=DEFAULT_SHINGLE_SIZE, ge=1, le=16, description="characters per shingle (after normalisation)"
    )
    num_perm: int = Field(default=128, ge=8, le=1024, description="MinHash permutations")
    bands: int | None = Field(default=None, ge=2, description="LSH bands; None: chosen for the threshold")
    rows: int | None = Field(default=None, ge=1, description="rows per LSH band; None: chosen for the threshold")
    seed: int = Field(default=1, description="seed of the MinHash permutations")
    text: Literal["instruction", "prompt"] = Field(
        default="instruction",
        description="what of an example is compared: the instruction (as Alpaca does) or instruction + input",
    )
    index: Literal["bands", "datasketch"] = Field(
        default="bands",
        description="LSH index: our sorted-array band tables (fast) or datasketch.MinHashLSH (same verdicts, slower)",
    )

    @model_validator(mode="after")
    def _bands_fit(self) -> DedupSettings:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both bands and rows, or neither (then they are chosen for the threshold)")
        if self.bands is not None and self.rows is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(
                f"bands * rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}; "
                "lower one of them or raise num_perm"
            )
        return self

    def lsh_params(self) -> tuple[int, int]:
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        return choose_lsh_params(self.threshold, self.num_perm)


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """Chance that two sets with this Jaccard similarity share at least one LSH band."""
    return 1.0 - (1.0 - similarity**rows) ** bands


def choose_lsh_params(threshold: float, num_perm: int, target: float = 0.99) -> tuple[int, int]:
    """(bands, rows): the most rows per band (fewest chance candidates) such that a pair halfway
    between the threshold and identical, Jaccard (1 + threshold) / 2, is a candidate with
    probability >= `target`.

    Near-duplicates made by rewording sit well above the threshold, while texts sharing only a
    template sit just below it and in great numbers (bench/dedup.py reports both similarity
    distributions); aiming the LSH curve at the threshold itself would make thousands of template
    siblings candidates of every query. `candidate_probability` tells what a setting finds at the
    threshold; the exact check then decides every candidate.
    """
    design = (1.0 + threshold) / 2.0
    best: tuple[int, int] = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if bands < 2:
            break
        if candidate_probability(design, bands, rows) >= target:
            best = (bands, rows)
    return best
