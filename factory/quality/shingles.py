"""What is compared: texts normalised and cut into sets of hashed character n-grams."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np

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
    # surrogatepass: a lone surrogate (a JSON "\\ud83d" cut from its pair) becomes its code point,
    # which is not a letter and so is dropped, instead of failing the whole batch.
    cps = np.frombuffer(_fold_unicode(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
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
    short texts still match. A text with no letter or digit at all (emoji, punctuation) has the
    empty set: it is like nothing, and nothing is like it (the filters reject it as `no_text`).
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
    short = np.flatnonzero((ends - starts < n) & (ends > starts))
    if len(short):
        whole = [(int(i) << 32) | _window_hash(cps[starts[i] : ends[i]].tolist()) for i in short]
        keys_parts.append(np.array(whole, dtype=np.uint64))
    # One sort of (text index << 32 | hash) gives every text's set, sorted and deduplicated.
    # (Sort + mask: numpy 2's np.unique takes a hash-table path that is 20x slower here.)
    keys = np.sort(np.concatenate(keys_parts)) if keys_parts else np.zeros(0, dtype=np.uint64)
    first = np.empty(len(keys), dtype=bool)
    first[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    keys = keys[first]
    text_of = (keys >> np.uint64(32)).astype(np.int64)
    hashes = (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    bounds = np.searchsorted(text_of, np.arange(len(texts) + 1)).tolist()
    return [hashes[bounds[i] : bounds[i + 1]] for i in range(len(texts))]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted unique hash arrays (0 if both are empty)."""
    inter = len(np.intersect1d(a, b, assume_unique=True))
    union = len(a) + len(b) - inter
    return inter / union if union else 0.0
