"""Bitmap filter (Sandes et al., 2020): a cheap, exact upper bound on the overlap of two sets.

Each shingle sets one of 512 bits of its text's bitmap. A bit set in one bitmap and not in the
other stands for at least one shingle of one set that is not in the other, and distinct bits for
distinct shingles; so |A ^ B| >= popcount(bitmap A xor bitmap B), and
|A & B| = (|A| + |B| - |A ^ B|) / 2 <= (|A| + |B| - popcount) / 2. Texts made from one template
share many shingles yet mostly fall short of the threshold; this bound discards most of them
with a few XORs instead of an exact intersection.
"""

from __future__ import annotations

import numpy as np

WORDS = 8  # 64-bit words per bitmap: 512 bits, several times a short instruction's shingles, so that
# few of them share a bit and the bound is close to the true overlap
_LOG_BITS = (WORDS * 64).bit_length() - 1
_SPREAD = np.uint64(0x9E3779B97F4A7C15)


def bitmaps(flat: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """(len(sizes), WORDS) uint64: the bitmap of each set of `flat` (sets concatenated)."""
    out = np.zeros(len(sizes) * WORDS, dtype=np.uint64)
    if len(flat):
        bit = (flat.astype(np.uint64) * _SPREAD) >> np.uint64(64 - _LOG_BITS)  # from the mixed high bits
        owner = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
        word = owner * WORDS + (bit >> np.uint64(6)).astype(np.int64)
        np.bitwise_or.at(out, word, np.uint64(1) << (bit & np.uint64(63)))
    return out.reshape(len(sizes), WORDS)


def gather(bits: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """bits[rows] for a C-contiguous (n, WORDS) array, each bitmap moved as one 64-byte item:
    several times faster than numpy's two-dimensional fancy indexing."""
    one = np.ascontiguousarray(bits).view(np.dtype((np.void, WORDS * 8))).ravel()
    return one[rows].view(np.uint64).reshape(len(rows), WORDS)


def overlap_bound(a: np.ndarray, b: np.ndarray, size_a: np.ndarray, size_b: np.ndarray) -> np.ndarray:
    """Upper bounds of |A & B| for rows of bitmaps `a`, `b` of sets of sizes `size_a`, `size_b`."""
    counts = np.bitwise_count(a ^ b)
    differ = counts[:, 0].astype(np.int64)
    for w in range(1, counts.shape[1]):  # column by column: numpy sums short rows slowly
        differ += counts[:, w]
    return (size_a + size_b - differ) // 2
