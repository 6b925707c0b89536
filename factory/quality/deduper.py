"""Near-duplicate detection: MinHash LSH over normalised character n-grams, checked exactly.

Why character n-grams: Alpaca's filter (ROUGE-L > 0.7 against every kept instruction) tokenises
with rouge-score, which keeps only [a-z0-9] words, so a Korean instruction becomes an empty token
list and nothing is ever caught. Character n-grams of the normalised text work for any script and
do not care about Korean spacing.

The pipeline, for a chunk of texts at a time:

1. normalise (NFKC, lowercase, Hangul syllables split into jamo, letters and digits only); cut
   into overlapping `shingle_size`-character windows; hash each to 32 bits; keep the set.
2. MinHash signature of each set with datasketch's "affine32" permutations: the values
   `datasketch.MinHash(scheme="affine32")` gives (a test holds this), as one numpy outer product
   per block of texts instead of one Python call per shingle.
3. LSH: texts whose signatures agree on every row of at least one band are candidates.
4. Candidates whose MinHash estimate is far below the threshold, or whose sizes alone rule them
   out, are pruned; the rest are checked with the exact Jaccard similarity of the two hash sets.
   A text is a duplicate iff that exact Jaccard >= `threshold`: an LSH collision never drops
   anything by itself.

Streaming: `check_and_add_many` checks each text against everything indexed before it (kept
examples, seeds, evaluation questions), earlier texts of the same call included, and indexes it
only if nothing is near. Steps 1-2 for the next chunk run in a worker thread while the current one
is checked. The index lives in memory; a resumed run rebuilds it from `examples.jsonl`, the file
that already records what was kept (`load_run_deduper`): the index can never disagree with the
data after a crash, and a changed setting applies on resume. Rebuilding is about as fast as
checking (bench/dedup.py: rebuild_items_per_s).
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH
from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas import Example, Rejected, iter_jsonl

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


# ------------------------------------------------------------------------------------------------
# Normalisation and shingling

_SEP = "\x1f"  # joins a batch of texts into one string (a control character: never kept)
_POLY = np.uint64(0x100000001B3)  # FNV prime: an odd multiplier for the rolling window hash
_FOLD = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio constant: high 32 bits of h * _FOLD mix all of h
_KEEP_BMP: np.ndarray | None = None  # _KEEP_BMP[cp]: is chr(cp) a letter or digit (built on first use)


def _keep_table() -> np.ndarray:
    global _KEEP_BMP
    if _KEEP_BMP is None:
        _KEEP_BMP = np.fromiter((chr(c).isalnum() for c in range(0x10000)), dtype=bool, count=0x10000)
    return _KEEP_BMP


def _fold_unicode(texts: Sequence[str]) -> str:
    # NFKC, lowercase, then NFD: NFD splits each Hangul syllable into its jamo (and an accented
    # letter into letter + mark, the mark then dropped). One C-level call each for the whole batch.
    joined = _SEP.join(texts)
    return unicodedata.normalize("NFD", unicodedata.normalize("NFKC", joined).lower())


def normalize(text: str) -> str:
    """What is compared: NFKC, lowercase, Hangul syllables split into jamo, letters and digits
    only (no punctuation, no whitespace, no combining marks).

    Why the jamo: a Hangul syllable carries what two or three Latin letters do, so a particle or
    ending change (은 -> 이, 해 주세요 -> 해 줘) replaces whole syllables; over jamo a Korean text is
    about as long and as finely cut as its English counterpart, and one shingle size and one
    threshold serve both (bench/dedup.py measures both languages).
    """
    return "".join(filter(str.isalnum, _fold_unicode([text])))


def _codepoints(texts: Sequence[str]) -> np.ndarray:
    """The normalised texts as one uint32 code-point array, texts separated by ord(_SEP)."""
    cps = np.frombuffer(_fold_unicode(texts).encode("utf-32-le"), dtype=np.uint32)
    bmp = cps < 0x10000
    keep = np.zeros(len(cps), dtype=bool)
    keep[bmp] = _keep_table()[cps[bmp]]
    if not bmp.all():  # astral characters (emoji, rare CJK): few, looked up one by one
        astral = np.flatnonzero(~bmp)
        keep[astral] = [chr(c).isalnum() for c in cps[astral].tolist()]
    keep |= cps == ord(_SEP)
    return cps[keep]


def _fold32(h: np.ndarray) -> np.ndarray:
    return ((h * _FOLD) >> np.uint64(32)).astype(np.uint32)


def _window_hash(codepoints: Sequence[int]) -> int:
    """The hash `shingle_sets` gives a window; for texts shorter than one window."""
    h = np.zeros(1, dtype=np.uint64)
    for c in codepoints:
        h = h * _POLY + np.uint64(c)
    return int(_fold32(h)[0])


def shingle_sets(texts: Sequence[str], shingle_size: int) -> list[np.ndarray]:
    """For each text, the sorted unique 32-bit hashes of its normalised character n-grams.

    A text shorter than one window (after normalisation) is one shingle: itself, so that two equal
    short texts still match and an empty text matches only empty texts.
    """
    if not texts:
        return []
    n = shingle_size
    # A text containing the separator would split in two; a control character is never kept anyway.
    cps = _codepoints([t.replace(_SEP, " ") for t in texts])
    is_sep = cps == ord(_SEP)
    sep_pos = np.flatnonzero(is_sep)
    starts = np.concatenate(([0], sep_pos + 1))
    ends = np.concatenate((sep_pos, [len(cps)]))
    # Rolling polynomial hash of every window, for all texts at once; windows that cross a
    # separator are dropped.
    n_windows = len(cps) - n + 1
    keys_parts: list[np.ndarray] = []
    if n_windows > 0:
        cp64 = cps.astype(np.uint64)
        h = np.zeros(n_windows, dtype=np.uint64)
        crosses = np.zeros(n_windows, dtype=bool)
        for k in range(n):
            h = h * _POLY + cp64[k : k + n_windows]
            crosses |= is_sep[k : k + n_windows]
        valid = ~crosses
        window_text = np.cumsum(is_sep)[:n_windows]  # the text each window starts in
        keys_parts.append((window_text[valid].astype(np.uint64) << np.uint64(32)) | _fold32(h[valid]))
    short = np.flatnonzero(ends - starts < n)
    if len(short):
        whole = [(int(i) << 32) | _window_hash(cps[starts[i] : ends[i]].tolist()) for i in short]
        keys_parts.append(np.array(whole, dtype=np.uint64))
    # One sort of (text index << 32 | hash) gives every text's set, sorted and deduplicated.
    # (Sort + mask: numpy 2's np.unique takes a hash-table path that is 20x slower here.)
    keys = np.sort(np.concatenate(keys_parts))
    first = np.empty(len(keys), dtype=bool)
    first[0] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    keys = keys[first]
    text_of = (keys >> np.uint64(32)).astype(np.int64)
    hashes = (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    bounds = np.searchsorted(text_of, np.arange(len(texts) + 1)).tolist()
    return [hashes[bounds[i] : bounds[i + 1]] for i in range(len(texts))]


# ------------------------------------------------------------------------------------------------
# MinHash signatures

_M1, _M2 = np.uint32(0x85EBCA6B), np.uint32(0xC2B2AE35)


def _fmix32(h: np.ndarray) -> np.ndarray:
    # MurmurHash3's finaliser, exactly as datasketch's affine32 scheme pre-mixes its inputs.
    h = h ^ (h >> np.uint32(16))
    h = h * _M1
    h = h ^ (h >> np.uint32(13))
    h = h * _M2
    return h ^ (h >> np.uint32(16))


class MinHasher:
    """datasketch-compatible MinHash signatures ("affine32" scheme), a batch of sets at a time."""

    def __init__(self, num_perm: int = 128, seed: int = 1) -> None:
        self.num_perm = num_perm
        self.seed = seed
        # Take the permutations from datasketch itself, so our values are its values.
        a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
        self._a = np.ascontiguousarray(a, dtype=np.uint32)[:, None]
        self._b = np.ascontiguousarray(b, dtype=np.uint32)[:, None]

    def signatures(self, sets: Sequence[np.ndarray]) -> np.ndarray:
        """(len(sets), num_perm) uint32. Every set must be non-empty (`shingle_sets` makes them so)."""
        out = np.empty((len(sets), self.num_perm), dtype=np.uint32)
        # A few dozen texts at a time: the (num_perm, shingles) block then stays in cache.
        for start in range(0, len(sets), self.BLOCK):
            out[start : start + self.BLOCK] = self._block(sets[start : start + self.BLOCK])
        return out

    BLOCK = 64

    def _block(self, sets: Sequence[np.ndarray]) -> np.ndarray:
        sizes = np.fromiter((len(s) for s in sets), dtype=np.int64, count=len(sets))
        if (sizes == 0).any():
            raise ValueError("MinHash of an empty set is undefined; every text needs at least one shingle")
        flat = _fmix32(np.concatenate(sets))
        # (num_perm, total shingles): permutation-major, so the per-text minimum is a reduceat
        # over contiguous runs, which numpy does far faster than along the other axis.
        permuted = self._a * flat[None, :]
        permuted += self._b
        offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        return np.minimum.reduceat(permuted, offsets, axis=1).T

    def lean(self, signature: np.ndarray) -> LeanMinHash:
        return LeanMinHash(seed=self.seed, hashvalues=signature, scheme="affine32")


# ------------------------------------------------------------------------------------------------
# LSH indexes: both give the keys whose signatures share at least one band with the query.

_BAND_MIX = np.uint64(0xC2B2AE3D27D4EB4F)


class _SortedBands:
    """LSH band tables as sorted arrays: every (band key, row) of the index, the band folded into
    the key, kept in a few sorted runs that merge as they grow (a log-structured merge).

    Looking up the band keys of a whole chunk is then a handful of `np.searchsorted` calls, and
    adding a chunk's kept rows one sort. The same index as dicts of buckets, probed per text,
    costs several times more on a large run: 21 dict operations per text that each miss the CPU
    cache. datasketch.MinHashLSH stores the same buckets (bench/dedup.py measures both).
    """

    def __init__(self, bands: int, rows: int) -> None:
        self.bands, self.rows = bands, rows
        # Distinct salts make equal rows in different bands different keys, so all bands share
        # one sorted array.
        self._salt = np.random.default_rng(0x5EED).integers(0, 2**63, bands, dtype=np.uint64)[None, :]
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted keys, their rows)

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """(len(signatures), bands) uint64: each band's rows hashed into one number."""
        used = signatures[:, : self.bands * self.rows].astype(np.uint64)
        used = used.reshape(len(signatures), self.bands, self.rows)
        h = np.zeros((len(signatures), self.bands), dtype=np.uint64)
        for r in range(self.rows):
            h = h * _BAND_MIX + used[:, :, r]
        return h ^ self._salt

    def add(self, band_keys: np.ndarray, rows: np.ndarray) -> None:
        if not len(rows):
            return
        keys = band_keys.ravel()
        order = np.argsort(keys, kind="stable")
        self._runs.append((keys[order], np.repeat(rows, self.bands)[order]))
        # Merge while the newer run is at least half the size of the older: log2(n) runs at most.
        while len(self._runs) >= 2 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            (k2, r2), (k1, r1) = self._runs.pop(), self._runs.pop()
            keys, rows_ = np.concatenate((k1, k2)), np.concatenate((r1, r2))
            order = np.argsort(keys, kind="stable")  # timsort: two sorted runs merge in one pass
            self._runs.append((keys[order], rows_[order]))

    def query(self, band_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query, row) pairs, each once: row shares a bucket with query's band keys."""
        flat = band_keys.ravel()
        order = np.argsort(flat)  # sorted probes walk the runs in order: far fewer cache misses
        probes, owner = flat[order], order // self.bands
        found_q, found_r = [], []
        for keys, rows in self._runs:
            lo = np.searchsorted(keys, probes, side="left")
            hit = keys[np.minimum(lo, len(keys) - 1)] == probes
            if not hit.any():
                continue
            # Only the probes that hit need the end of their range.
            lo = lo[hit]
            n = np.searchsorted(keys, probes[hit], side="right") - lo
            # Expand each [lo, lo + n) range into positions.
            pos = np.repeat(lo - np.cumsum(n) + n, n) + np.arange(int(n.sum()))
            found_q.append(np.repeat(owner[hit], n))
            found_r.append(rows[pos])
        if not found_q:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        pair = np.sort((np.concatenate(found_q) << 32) | np.concatenate(found_r))
        pair = pair[np.concatenate(([True], pair[1:] != pair[:-1]))]  # each pair once (a row can share several bands)
        return pair >> 32, pair & 0xFFFFFFFF


class _DatasketchTables:
    """The same banding through datasketch.MinHashLSH and LeanMinHash (the reference index)."""

    def __init__(self, bands: int, rows: int, hasher: MinHasher) -> None:
        self.bands, self.rows = bands, rows
        self._hasher = hasher
        self._lsh = MinHashLSH(num_perm=hasher.num_perm, params=(bands, rows))

    def query(self, lean: LeanMinHash) -> set[int]:
        return set(self._lsh.query(lean))

    def insert(self, row: int, lean: LeanMinHash) -> None:
        self._lsh.insert(row, lean, check_duplication=False)


def _chunk_collisions(band_keys: np.ndarray) -> list[list[tuple[int, int]]]:
    """For each text of a chunk, the (earlier text, band) pairs of the chunk it shares a bucket
    with. (Band keys are salted per band, so equal keys are always of the same band.)"""
    n, bands = band_keys.shape
    out: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    flat = band_keys.ravel()
    order = np.argsort(flat, kind="stable")  # equal keys keep their chunk order
    ordered = flat[order]
    for i in np.flatnonzero(ordered[1:] == ordered[:-1]).tolist():
        later = int(order[i + 1])
        j = i
        while j >= 0 and ordered[j] == ordered[i + 1]:
            out[later // bands].append((int(order[j]) // bands, later % bands))
            j -= 1
    return out


# ------------------------------------------------------------------------------------------------
# The streaming deduplicator


@dataclass(frozen=True)
class DupCheck:
    """The verdict on one text; unpacks as (is_dup, dup_of, similarity)."""

    is_dup: bool
    dup_of: str | None  # the id of the most similar indexed text, if it is a duplicate
    similarity: float  # exact Jaccard with `dup_of`; for a unique text, the highest one seen (or 0)
    kind: EntryKind | None = None  # what `dup_of` is: a kept example, a seed, an eval question

    def __iter__(self) -> Iterator[Any]:
        return iter((self.is_dup, self.dup_of, self.similarity))

    def describe(self) -> str:
        what = {"seed": "seed ", "eval": "eval question "}.get(self.kind or "kept", "")
        return f"duplicate of {what}{self.dup_of} (similarity {self.similarity:.2f})"


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted unique hash arrays."""
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


class _Chunk(NamedTuple):
    items: list[tuple[str, str]]
    sets: list[np.ndarray]
    sizes: np.ndarray  # len of each set
    keyed: np.ndarray  # all sets as (position << 32 | hash): sorted, for exact intersections
    sigs: np.ndarray
    keys: Any  # (n, bands) band keys, or a LeanMinHash per text for the datasketch index
    collisions: list[list[tuple[int, int]]]  # per text: (earlier text of the chunk, band)


class Deduper:
    """Streaming near-duplicate filter over kept examples, seeds and evaluation questions.

    >>> d = Deduper()
    >>> d.add_many([("s1", "Write a poem about the sea.")], kind="seed")
    1
    >>> d.check_and_add("e1", "Write a short poem about the sea!").is_dup
    True
    """

    def __init__(self, settings: DedupSettings | None = None, batch_size: int = 1024) -> None:
        self.settings = settings or DedupSettings()
        self.batch_size = batch_size
        self.hasher = MinHasher(self.settings.num_perm, self.settings.seed)
        bands, rows = self.settings.lsh_params()
        self._index: _SortedBands | _DatasketchTables
        if self.settings.index == "datasketch":
            self._index = _DatasketchTables(bands, rows, self.hasher)
        else:
            self._index = _SortedBands(bands, rows)
        self._ids: list[str] = []
        self._kinds: list[EntryKind] = []
        self._sets: list[np.ndarray] = []
        self._sigs = np.empty((1024, self.settings.num_perm), dtype=np.uint32)  # grown by doubling
        self._sizes = np.empty(1024, dtype=np.int64)  # len(self._sets[row]), for numpy
        self._known: set[tuple[EntryKind, str]] = set()
        # A candidate is checked exactly only if its MinHash estimate is within 3 standard
        # deviations of the threshold: a pair right at the threshold is pruned with probability
        # 0.13% (less the further above it is), and the many template-sharing candidates well
        # below it cost one numpy comparison.
        t, p = self.settings.threshold, self.settings.num_perm
        self._min_agree = max(0.0, t - 3.0 * (t * (1.0 - t) / p) ** 0.5) * p
        self.candidates_seen = 0  # LSH candidates (for benchmarks)
        self.candidates_checked = 0  # of those, checked exactly

    @property
    def lsh_params(self) -> tuple[int, int]:
        return self._index.bands, self._index.rows

    def __len__(self) -> int:
        return len(self._ids)

    def count(self, kind: EntryKind) -> int:
        return sum(1 for k in self._kinds if k == kind)

    def __contains__(self, item_id: str) -> bool:
        return ("kept", item_id) in self._known

    # -- adding without checking (seeds, eval questions, a resumed run's kept examples) ---------

    def add(self, item_id: str, text: str, kind: EntryKind = "kept") -> None:
        self.add_many([(item_id, text)], kind=kind)

    def add_many(self, items: Iterable[tuple[str, str]], kind: EntryKind = "kept") -> int:
        """Index these texts as they are (no check among them). Returns how many were added."""
        added = 0
        for chunk in self._prepared(items):
            self._check_ids(chunk, kind)
            self._keep(chunk, list(range(len(chunk.items))), kind)
            added += len(chunk.items)
        return added

    # -- streaming check -----------------------------------------------------------------------

    def check(self, text: str) -> DupCheck:
        """The verdict on `text` against everything indexed, without adding it."""
        chunk = self._prepare([("", text)])
        row, sim = self._nearest_indexed(chunk)
        return self._verdict(row[0], sim[0])

    def check_and_add(self, item_id: str, text: str) -> DupCheck:
        """Check `text` against everything kept so far; keep (index) it if it is not a duplicate."""
        return self.check_and_add_many([(item_id, text)])[0]

    def check_and_add_many(self, items: Iterable[tuple[str, str]]) -> list[DupCheck]:
        """`check_and_add` for each item in order: each is checked against everything kept
        before it, earlier items of the same call included. Shingling, MinHash and the LSH
        look-ups are done a chunk of items at a time."""
        return list(self.iter_check_and_add(items))

    def iter_check_and_add(self, items: Iterable[tuple[str, str]]) -> Iterator[DupCheck]:
        """`check_and_add_many` as a generator. A chunk's verdicts come once the whole chunk is
        checked and its kept texts indexed: consume it to the end."""
        for chunk in self._prepared(items):
            self._check_ids(chunk, "kept")
            yield from self._check_chunk(chunk)

    # -- internals -----------------------------------------------------------------------------

    def _check_chunk(self, chunk: _Chunk) -> list[DupCheck]:
        """Check a chunk in order: the same verdicts as one text at a time.

        The nearest text among what was indexed before the chunk is found for all its texts at
        once (`_nearest_indexed`). Within the chunk, a text's candidates are the earlier texts
        that share a bucket with it (`_chunk_collisions`) and were kept; they are few and checked
        one by one. The kept texts are indexed when the chunk is done.
        """
        if isinstance(self._index, _DatasketchTables):
            return [self._check_one(chunk, i) for i in range(len(chunk.items))]
        best_row, best_sim = self._nearest_indexed(chunk)
        kept: list[int] = []
        row_of: dict[int, int] = {}  # chunk position -> row, for the kept ones
        first_row = len(self._ids)
        verdicts = []
        for i, s in enumerate(chunk.sets):
            row, sim = best_row[i], best_sim[i]
            if chunk.collisions[i]:
                earlier = sorted({o for o, _ in chunk.collisions[i] if o in row_of})
                r, r_sim = self._nearest_in_chunk(chunk, i, earlier)
                if r >= 0 and r_sim > sim:
                    row, sim = row_of[r], r_sim
            verdict = self._verdict(row, sim)
            if not verdict.is_dup:
                row_of[i] = first_row + len(kept)
                kept.append(i)
                self._register(chunk.items[i][0], "kept", s)
            verdicts.append(verdict)
        self._index_rows(chunk, kept, first_row)
        return verdicts

    def _check_one(self, chunk: _Chunk, i: int) -> DupCheck:
        """One text through the datasketch index (the reference path): look up, check, insert."""
        assert isinstance(self._index, _DatasketchTables)
        rows = np.array(sorted(self._index.query(chunk.keys[i])), dtype=np.int64)
        best_row, best_sim = self._nearest_of(chunk, np.full(len(rows), i, dtype=np.int64), rows)
        verdict = self._verdict(best_row[i], best_sim[i])
        if not verdict.is_dup:
            self._keep(chunk, [i], "kept")
        return verdict

    def _keep(self, chunk: _Chunk, positions: list[int], kind: EntryKind) -> None:
        first_row = len(self._ids)
        for i in positions:
            self._register(chunk.items[i][0], kind, chunk.sets[i])
        self._index_rows(chunk, positions, first_row)

    def _check_ids(self, chunk: _Chunk, kind: EntryKind) -> None:
        """Refuse a chunk with an id already indexed or repeated, before anything is changed."""
        ids = [item_id for item_id, _ in chunk.items]
        if len(set(ids)) != len(ids) or any((kind, i) in self._known for i in ids):
            seen: set[str] = set()
            for i in ids:
                if (kind, i) in self._known or i in seen:
                    raise ValueError(f"{kind} id {i!r} is given twice; ids must be unique")
                seen.add(i)

    def _register(self, item_id: str, kind: EntryKind, shingles: np.ndarray) -> None:
        self._known.add((kind, item_id))
        self._ids.append(item_id)
        self._kinds.append(kind)
        self._sets.append(shingles)

    def _index_rows(self, chunk: _Chunk, positions: list[int], first_row: int) -> None:
        """Signatures and LSH entries of the chunk's texts at `positions`, as rows first_row..."""
        end = first_row + len(positions)
        while end > len(self._sigs):
            self._sigs = np.concatenate((self._sigs, np.empty_like(self._sigs)))
            self._sizes = np.concatenate((self._sizes, np.empty_like(self._sizes)))
        self._sigs[first_row:end] = chunk.sigs[positions]
        self._sizes[first_row:end] = chunk.sizes[positions]
        if isinstance(self._index, _SortedBands):
            self._index.add(chunk.keys[positions], np.arange(first_row, end))
        else:
            for row, i in enumerate(positions, start=first_row):
                self._index.insert(row, chunk.keys[i])

    def _nearest_indexed(self, chunk: _Chunk) -> tuple[list[int], list[float]]:
        """For each text of the chunk, the most similar indexed text (row, exact Jaccard) among
        its LSH candidates; (-1, 0.0) if none."""
        if isinstance(self._index, _SortedBands):
            query, rows = self._index.query(chunk.keys)
        else:
            pairs = [(q, r) for q, lean in enumerate(chunk.keys) for r in sorted(self._index.query(lean))]
            query = np.array([q for q, _ in pairs], dtype=np.int64)
            rows = np.array([r for _, r in pairs], dtype=np.int64)
        return self._nearest_of(chunk, query, rows)

    def _nearest_of(self, chunk: _Chunk, query: np.ndarray, rows: np.ndarray) -> tuple[list[int], list[float]]:
        """The best of the candidate pairs (chunk text `query[k]`, indexed `rows[k]`) per text.

        Pairs are pruned first by MinHash agreement and by size (|A & B| / |A | B| <= min/max),
        then the survivors' exact intersections are counted all at once: every candidate shingle,
        tagged with its text's position, looked up in the chunk's sorted tagged shingles.
        """
        best_row, best_sim = [-1] * len(chunk.items), [0.0] * len(chunk.items)
        self.candidates_seen += len(rows)
        if not len(rows):
            return best_row, best_sim
        t = self.settings.threshold
        keep = (self._sigs[rows] == chunk.sigs[query]).sum(axis=1) >= self._min_agree
        qsize, csize = chunk.sizes[query], self._sizes[rows]
        keep &= np.minimum(qsize, csize) >= t * np.maximum(qsize, csize)
        query, rows, qsize, csize = query[keep], rows[keep], qsize[keep], csize[keep]
        if not len(rows):
            return best_row, best_sim
        self.candidates_checked += len(rows)
        probe = (np.repeat(query.astype(np.uint64), csize) << np.uint64(32)) | np.concatenate(
            [self._sets[r] for r in rows.tolist()])
        pos = np.searchsorted(chunk.keyed, probe)
        np.minimum(pos, len(chunk.keyed) - 1, out=pos)
        inter = np.add.reduceat(chunk.keyed[pos] == probe, np.cumsum(csize) - csize, dtype=np.int64)
        sims = inter / (qsize + csize - inter)
        for q, r, sim in zip(query.tolist(), rows.tolist(), sims.tolist()):
            if sim > best_sim[q]:
                best_row[q], best_sim[q] = r, sim
        return best_row, best_sim

    def _nearest_in_chunk(self, chunk: _Chunk, i: int, earlier: list[int]) -> tuple[int, float]:
        """The most similar of a few earlier texts of the chunk (positions) to text `i`, with the
        pruning `_nearest_of` applies, the exact Jaccard taken one by one with Python sets."""
        self.candidates_seen += len(earlier)
        t, n = self.settings.threshold, int(chunk.sizes[i])
        query: set[int] | None = None
        best, best_sim = -1, 0.0
        for o in earlier:
            m = int(chunk.sizes[o])
            if np.count_nonzero(chunk.sigs[o] == chunk.sigs[i]) < self._min_agree or min(n, m) < t * max(n, m):
                continue
            if query is None:
                query = set(chunk.sets[i].tolist())
            self.candidates_checked += 1
            inter = len(query.intersection(chunk.sets[o].tolist()))
            sim = inter / (n + m - inter)
            if sim > best_sim:
                best, best_sim = o, sim
        return best, best_sim

    def _verdict(self, row: int, sim: float) -> DupCheck:
        if row >= 0 and sim >= self.settings.threshold:
            return DupCheck(True, self._ids[row], sim, self._kinds[row])
        return DupCheck(False, None, sim)

    def _prepared(self, items: Iterable[tuple[str, str]]) -> Iterator[_Chunk]:
        """Chunks of items with their shingles, signatures and band keys. The next chunk is
        prepared in a worker thread while the caller checks this one: the numpy work releases the
        GIL, so a second core takes most of the hashing off the sequential check."""
        chunks = _chunks(items, self.batch_size)
        first = next(chunks, None)
        if first is None:
            return
        second = next(chunks, None)
        if second is None:  # one chunk: nothing to overlap with
            yield self._prepare(first)
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dedup-prepare") as pool:
            pending = pool.submit(self._prepare, first)
            for upcoming in itertools.chain([second], chunks):
                prepared = pending.result()
                pending = pool.submit(self._prepare, upcoming)
                yield prepared
            yield pending.result()

    def _prepare(self, items: list[tuple[str, str]]) -> _Chunk:
        sets = shingle_sets([t for _, t in items], self.settings.shingle_size)
        sizes = np.fromiter(map(len, sets), dtype=np.int64, count=len(sets))
        keyed = (np.repeat(np.arange(len(sets), dtype=np.uint64), sizes) << np.uint64(32)) | np.concatenate(sets)
        sigs = self.hasher.signatures(sets)
        if isinstance(self._index, _SortedBands):
            keys = self._index.band_keys(sigs)
            return _Chunk(items, sets, sizes, keyed, sigs, keys, _chunk_collisions(keys))
        leans = [self.hasher.lean(s) for s in sigs]
        return _Chunk(items, sets, sizes, keyed, sigs, leans, [[] for _ in items])


def _chunks(items: Iterable[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    chunk: list[tuple[str, str]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# ------------------------------------------------------------------------------------------------
# Examples and runs


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
    run_dir: str | Path,
    settings: DedupSettings | None = None,
    *,
    seeds: Iterable[tuple[str, str]] = (),
    eval_items: Iterable[tuple[str, str]] = (),
    examples_file: str = "examples.jsonl",
) -> Deduper:
    """A deduper holding the seeds, the eval questions and every example already kept in the run.

    Rebuilt from `examples.jsonl` on every start; a torn last line from a crash is skipped, as the
    run itself skips it.
    """
    deduper = Deduper(settings)
    deduper.add_many(seeds, kind="seed")
    deduper.add_many(eval_items, kind="eval")
    path = Path(run_dir) / examples_file
    field = deduper.settings.text
    deduper.add_many(((ex.id, example_text(ex, field)) for ex in iter_jsonl(path, Example)), kind="kept")
    return deduper
