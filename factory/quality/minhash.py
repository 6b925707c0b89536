"""MinHash signatures of shingle sets, the values datasketch gives, a batch of sets at a time."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from datasketch import LeanMinHash, MinHash

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
        """(len(sets), num_perm) uint32."""
        out = np.empty((len(sets), self.num_perm), dtype=np.uint32)
        # A few dozen texts at a time: the (num_perm, shingles) block then stays in cache.
        for start in range(0, len(sets), self.BLOCK):
            out[start : start + self.BLOCK] = self._block(sets[start : start + self.BLOCK])
        return out

    BLOCK = 64

    def _block(self, sets: Sequence[np.ndarray]) -> np.ndarray:
        sizes = np.fromiter((len(s) for s in sets), dtype=np.int64, count=len(sets))
        # The empty set's signature is datasketch's: every value the largest hash.
        out = np.full((len(sets), self.num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
        filled = np.flatnonzero(sizes)
        if not len(filled):
            return out
        flat = _fmix32(np.concatenate([sets[i] for i in filled.tolist()]))
        # (num_perm, total shingles): permutation-major, so the per-text minimum is a reduceat
        # over contiguous runs, which numpy does far faster than along the other axis.
        permuted = self._a * flat[None, :]
        permuted += self._b
        used = sizes[filled]
        offsets = np.concatenate(([0], np.cumsum(used)[:-1]))
        out[filled] = np.minimum.reduceat(permuted, offsets, axis=1).T
        return out

    def lean(self, signature: np.ndarray) -> LeanMinHash:
        return LeanMinHash(seed=self.seed, hashvalues=signature, scheme="affine32")
