"""Prefix filtering: an exact candidate test for set similarity joins (AllPairs, PPJoin).

Put every shingle of every set in one global order. If J(x, y) >= t then x and y share at least
ceil(t * |x|) shingles, so the first |x| - ceil(t * |x|) + 1 shingles of x in that order (its
prefix) contain one of them, and likewise for y: two sets that share no prefix shingle are below
the threshold, for certain. Indexing each kept text's prefix and probing with each new text's
prefix therefore finds every pair at or above the threshold; the exact check decides each one.

Any fixed order is correct; the fast one puts rare shingles first, so that the prefixes hold
rare shingles and few texts share them. The order here is (document frequency class, hash), the
frequencies taken from the kept texts; it is learnt again as the index grows (`TokenOrder.due`)
and the prefix index is then rebuilt, so that every indexed prefix and every probe always follow
one order.
"""

from __future__ import annotations

import numpy as np

# Frequency classes: the bit length of a shingle's document frequency, at most 15: shingles in
# 16,384 texts or more tie, ordered by hash, last.
_CLASS_BITS = 4
_MAX_CLASS = (1 << _CLASS_BITS) - 1
# The order is learnt again when the texts it was learnt from have grown this much.
_RELEARN_GROWTH = 4
_FIRST_LEARN = 512
# Past this many texts the order is kept: later texts rarely change which shingles are common,
# and rebuilding the prefix index costs a sort of all of it.
_LAST_LEARN = 200_000


def prefix_lengths(sizes: np.ndarray, num: int, den: int) -> np.ndarray:
    """|x| - ceil(t |x|) + 1 for t = num / den, in integers (0 for an empty set)."""
    sizes = sizes.astype(np.int64)
    need = (sizes * num + den - 1) // den  # ceil(t * |x|): the least overlap of a pair at t
    return np.where(sizes > 0, sizes - need + 1, 0)


class TokenOrder:
    """The global shingle order: document frequency class first (rare first), then hash.

    Its state (version, common shingles, their classes) is replaced whole, so that a worker
    thread taking prefixes while the order is learnt again sees one order or the other.
    """

    def __init__(self) -> None:
        self.learnt_from = 0  # how many texts the current order was learnt from
        self._state: tuple[int, np.ndarray, np.ndarray] = (
            0, np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.uint64))

    @property
    def version(self) -> int:
        return self._state[0]

    def due(self, texts: int) -> bool:
        """Should the order be learnt again now that `texts` are indexed?"""
        following = max(_FIRST_LEARN, self.learnt_from * _RELEARN_GROWTH)
        return following <= _LAST_LEARN and texts >= following

    def learn(self, flat: np.ndarray, texts: int) -> None:
        """Learn from `flat`, all indexed sets concatenated (each set's shingles unique)."""
        tokens, counts = np.unique(flat, return_counts=True)
        common = counts >= 2
        bits = np.floor(np.log2(counts[common])).astype(np.int64) + 1
        classes = np.minimum(bits, _MAX_CLASS).astype(np.uint64)
        self._state = (self.version + 1, tokens[common], classes)
        self.learnt_from = texts

    def prefixes(
        self, flat: np.ndarray, sizes: np.ndarray, num: int, den: int, eligible: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """The prefix of each set of `flat` (sets concatenated, `sizes` long each; none for a set
        not `eligible`): (shingles, owner, order version), owner being the set's position."""
        version, common, classes = self._state
        n = len(sizes)
        if n >= 1 << (32 - _CLASS_BITS):
            raise ValueError(f"{n} sets at once; prefixes are taken for at most {1 << (32 - _CLASS_BITS)}")
        owner = np.repeat(np.arange(n, dtype=np.int64), sizes)
        keys = flat.astype(np.uint64)
        if len(common) and len(flat):
            pos = np.searchsorted(common, flat)
            np.minimum(pos, len(common) - 1, out=pos)
            found = common[pos] == flat
            keys[found] |= classes[pos[found]] << np.uint64(32)
        # One sort of (owner, class, shingle): owner has 64 - 32 - _CLASS_BITS = 28 bits.
        keyed = np.sort((owner.astype(np.uint64) << np.uint64(32 + _CLASS_BITS)) | keys)
        starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
        rank = np.arange(len(flat), dtype=np.int64) - np.repeat(starts, sizes)
        lengths = prefix_lengths(sizes, num, den)
        if eligible is not None:
            lengths = np.where(eligible, lengths, 0)
        take = rank < np.repeat(lengths, sizes)
        return (keyed[take] & np.uint64(0xFFFFFFFF)).astype(np.uint32), owner[take], version
