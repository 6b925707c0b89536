"""factory.quality.bitmaps: every bit of the bitmap is used, and the overlap bound is a bound."""

from __future__ import annotations

import numpy as np

from factory.quality.bitmaps import WORDS, bitmaps, gather, overlap_bound


def _sets(rng: np.random.Generator, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    sets = [np.unique(rng.integers(0, 2**32, size, dtype=np.uint64).astype(np.uint32)) for _ in range(n)]
    return np.concatenate(sets), np.array([len(s) for s in sets], dtype=np.int64)


def test_every_word_of_the_bitmap_is_used() -> None:
    # A bitmap whose upper words stay empty bounds the overlap as loosely as a smaller one.
    flat, sizes = _sets(np.random.default_rng(1), 1, 4000)
    bits = bitmaps(flat, sizes)
    assert bits.shape == (1, WORDS)
    assert all(int(w) != 0 for w in bits[0])
    assert sum(int(w).bit_count() for w in bits[0]) > 0.9 * WORDS * 64


def test_overlap_bound_is_never_below_the_true_overlap() -> None:
    rng = np.random.default_rng(2)
    pool = rng.integers(0, 2**32, 400, dtype=np.uint64).astype(np.uint32)
    sets = [np.unique(rng.choice(pool, rng.integers(20, 120))) for _ in range(60)]
    sizes = np.array([len(s) for s in sets], dtype=np.int64)
    bits = bitmaps(np.concatenate(sets), sizes)
    a, b = np.repeat(np.arange(60), 60), np.tile(np.arange(60), 60)
    bound = overlap_bound(gather(bits, a), gather(bits, b), sizes[a], sizes[b])
    true = np.array([len(np.intersect1d(sets[i], sets[j])) for i, j in zip(a.tolist(), b.tolist())])
    assert (bound >= true).all()
    assert (bound[a == b] == true[a == b]).all()  # a set with itself: exact


def test_gather_equals_fancy_indexing() -> None:
    flat, sizes = _sets(np.random.default_rng(3), 50, 70)
    bits = bitmaps(flat, sizes)
    rows = np.random.default_rng(4).integers(0, 50, 200)
    assert np.array_equal(gather(bits, rows), bits[rows])
    assert gather(bits, rows[:0]).shape == (0, WORDS)
