"""The data's quality gates: the filters (each a named rejection reason) and the near-duplicate check.

- `filters`   the per-example filters: truncated, empty, placeholder, label, length, no_text,
              unsupported, refusal, echo, repetition, language
- `replies`   the gates for what real models write wrong (placeholders and labels of the prompt
              templates, echoes, loops, empty fields) and the repair of leading labels and quotes
- `settings`  how near is a duplicate (`DedupSettings`) and the LSH band layout it implies
- `shingles`  normalisation and the hashed character n-gram sets that are compared
- `minhash`   datasketch-compatible MinHash signatures of those sets
- `bands`     the LSH band indexes (sorted arrays, or datasketch.MinHashLSH)
- `deduper`   the streaming near-duplicate check (`Deduper`)
- `runs`      a run's deduper rebuilt from what it kept, and the rejection records
"""

from factory.quality.deduper import Deduper, DupCheck
from factory.quality.filters import FilterSettings, Rejection, parse_rejection
from factory.quality.minhash import MinHasher
from factory.quality.runs import example_text, load_run_deduper, rejection
from factory.quality.settings import (
    DEFAULT_SHINGLE_SIZE,
    DEFAULT_THRESHOLD,
    REASON_CONTAMINATION,
    REASON_DUPLICATE,
    DedupSettings,
    candidate_probability,
    choose_lsh_params,
)
from factory.quality.shingles import jaccard, normalize, shingle_sets

__all__ = [
    "DEFAULT_SHINGLE_SIZE",
    "DEFAULT_THRESHOLD",
    "REASON_CONTAMINATION",
    "REASON_DUPLICATE",
    "DedupSettings",
    "Deduper",
    "DupCheck",
    "FilterSettings",
    "MinHasher",
    "Rejection",
    "candidate_probability",
    "choose_lsh_params",
    "example_text",
    "jaccard",
    "load_run_deduper",
    "normalize",
    "parse_rejection",
    "rejection",
    "shingle_sets",
]
