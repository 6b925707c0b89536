"""How near is a duplicate: the settings of the near-duplicate check and the LSH band layout."""

from __future__ import annotations

import math
from fractions import Fraction
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
    num_perm: int = Field(
        default=256, ge=8, le=1024,
        description="the most MinHash permutations per text; the band layout chosen for the threshold uses "
        "bands * rows of them (only those are computed)",
    )
    bands: int | None = Field(default=None, ge=2, description="LSH bands; None: chosen for the threshold")
    rows: int | None = Field(default=None, ge=1, description="rows per LSH band; None: chosen for the threshold")
    seed: int = Field(default=1, description="seed of the MinHash permutations")
    text: Literal["instruction", "prompt"] = Field(
        default="instruction",
        description="what of an example is compared: the instruction (as Alpaca does) or instruction + input",
    )
    index: Literal["bands", "prefix", "datasketch"] = Field(
        default="bands",
        description="how candidates are found: 'bands' (MinHash LSH over sorted arrays), 'prefix' (an exact "
        "prefix-filtered join for texts of up to exact_max_shingles shingles, MinHash LSH bands for longer "
        "ones: misses nothing, fast when the texts' vocabulary is large, slow on a narrow one), "
        "'datasketch' (MinHash LSH through datasketch.MinHashLSH: slower, the reference)",
    )
    exact_max_shingles: int = Field(
        default=600, ge=1,
        description="with index='prefix': texts of more shingles than this are found through MinHash LSH",
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

    def ratio(self) -> tuple[int, int]:
        """The threshold as a fraction (num, den) of integers: 0.55 is 11/20, as written, so that a
        pair exactly at the threshold is a duplicate (0.55 * 100 is 55.00000000000001 in floats)."""
        f = Fraction(repr(self.threshold)).limit_denominator(1_000_000)
        return f.numerator, f.denominator

    def lsh_params(self) -> tuple[int, int]:
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        return choose_lsh_params(self.threshold, self.num_perm)


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """Chance that two sets with this Jaccard similarity share at least one LSH band."""
    return 1.0 - (1.0 - similarity**rows) ** bands


# The layout's cost model (bench/dedup.py's template stream, one core): a band key shared by
# chance costs about as much as computing _HIT_COST MinHash permutations of a text, and chance
# candidates come mostly from pairs around _BACKGROUND similarity (texts of one template).
_HIT_COST = 500.0
_BACKGROUND = 0.2


def choose_lsh_params(threshold: float, num_perm: int, target: float = 0.99) -> tuple[int, int]:
    """(bands, rows), bands * rows <= num_perm: a pair exactly at the threshold is a candidate
    with probability >= `target`, at the least cost.

    Texts made from one template sit in great numbers just below the threshold, and pairs just
    above it are as common as those far above (bench/dedup.py's template stream): a layout aimed
    above the threshold misses most of the pairs at it. For each number of rows the fewest bands
    that reach `target` are taken; of those layouts, the one with the least cost: the
    permutations computed per text (bands * rows) plus the chance candidates (bands *
    _BACKGROUND ** rows, weighted). More rows mean fewer chance candidates and more permutations.
    The exact check then decides every candidate.
    """
    best: tuple[float, tuple[int, int]] | None = None
    for rows in range(1, num_perm + 1):
        p = threshold**rows
        if p <= 0.0 or p >= 1.0:
            bands = 1 if p >= 1.0 else num_perm + 1
        else:
            bands = max(1, math.ceil(math.log1p(-target) / math.log1p(-p)))
        while bands * rows <= num_perm and candidate_probability(threshold, bands, rows) < target:
            bands += 1  # rounding in the logarithms
        if bands * rows > num_perm:
            continue
        cost = bands * rows + _HIT_COST * bands * _BACKGROUND**rows
        if best is None or cost < best[0]:
            best = (cost, (bands, rows))
    if best is None:  # no layout reaches the target: all permutations as single-row bands
        return num_perm, 1
    return best[1]
