"""What the deduper keeps of each indexed text: its id, its kind and its shingle set.

The sets live in one growing uint32 array with an offset per text, not one numpy array each:
a numpy array costs about 100 bytes before its first element, as much as a short text's set.
"""

from __future__ import annotations

import numpy as np

from factory.quality.bitmaps import WORDS
from factory.quality.settings import EntryKind

_KINDS: tuple[EntryKind, ...] = ("kept", "seed", "eval")


def _grown(a: np.ndarray, need: int) -> np.ndarray:
    if need <= len(a):
        return a
    out = np.empty((max(need, 2 * len(a)), *a.shape[1:]), dtype=a.dtype)
    out[: len(a)] = a
    return out


class Rows:
    """Indexed texts, row 0, 1, ...: id, kind and shingle set."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._kinds = bytearray()  # index into _KINDS
        self._known: dict[EntryKind, set[str]] = {k: set() for k in _KINDS}
        self._flat = np.empty(1 << 16, dtype=np.uint32)
        self._used = 0
        self._starts = np.empty(1024, dtype=np.int64)
        self._sizes = np.empty(1024, dtype=np.int64)
        self._bitmaps = np.empty((1024, WORDS), dtype=np.uint64)

    def __len__(self) -> int:
        return len(self.ids)

    def kind(self, row: int) -> EntryKind:
        return _KINDS[self._kinds[row]]

    def count(self, kind: EntryKind) -> int:
        return self._kinds.count(_KINDS.index(kind))

    def known(self, kind: EntryKind, item_id: str) -> bool:
        return item_id in self._known[kind]

    @property
    def sizes(self) -> np.ndarray:
        return self._sizes[: len(self.ids)]

    @property
    def bitmaps(self) -> np.ndarray:
        return self._bitmaps[: len(self.ids)]

    @property
    def flat(self) -> np.ndarray:
        """Every set, concatenated in row order."""
        return self._flat[: self._used]

    def nbytes(self) -> int:
        return self._flat.nbytes + self._starts.nbytes + self._sizes.nbytes + self._bitmaps.nbytes + len(self._kinds)

    def extend(self, ids: list[str], kind: EntryKind, sets: list[np.ndarray], bitmaps: np.ndarray) -> None:
        """Store several texts of one kind (their shingle sets and bitmaps), as rows in order."""
        if not ids:
            return
        row = len(self.ids)
        sizes = np.fromiter(map(len, sets), dtype=np.int64, count=len(sets))
        total = int(sizes.sum())
        self._flat = _grown(self._flat, self._used + total)
        self._flat[self._used : self._used + total] = np.concatenate(sets)
        end = row + len(ids)
        self._starts = _grown(self._starts, end)
        self._sizes = _grown(self._sizes, end)
        self._bitmaps = _grown(self._bitmaps, end)
        self._starts[row:end] = self._used + np.cumsum(sizes) - sizes
        self._sizes[row:end] = sizes
        self._bitmaps[row:end] = bitmaps
        self._used += total
        self.ids.extend(ids)
        self._kinds.extend([_KINDS.index(kind)] * len(ids))
        self._known[kind].update(ids)

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the sets of `rows` concatenated, their sizes)."""
        sizes = self._sizes[rows]
        total = int(sizes.sum())
        # Position k of the output is start[row] + (k - where that row's part begins).
        offsets = np.repeat(self._starts[rows] - (np.cumsum(sizes) - sizes), sizes)
        return self._flat[offsets + np.arange(total)], sizes

    def truncate(self, rows: int) -> None:
        """Forget every row >= `rows`."""
        if rows >= len(self.ids):
            return
        self._used = int(self._starts[rows])
        while len(self.ids) > rows:
            kind = _KINDS[self._kinds.pop()]
            self._known[kind].discard(self.ids.pop())
