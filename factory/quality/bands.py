"""LSH band indexes: both give the rows whose signatures share at least one band with a query."""

from __future__ import annotations

import numpy as np
from datasketch import LeanMinHash, MinHashLSH

from factory.quality.minhash import MinHasher

_BAND_MIX = np.uint64(0xC2B2AE3D27D4EB4F)


class SortedBands:
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


class DatasketchTables:
    """The same banding through datasketch.MinHashLSH and LeanMinHash (the reference index)."""

    def __init__(self, bands: int, rows: int, hasher: MinHasher) -> None:
        self.bands, self.rows = bands, rows
        self._hasher = hasher
        self._lsh = MinHashLSH(num_perm=hasher.num_perm, params=(bands, rows))

    def query(self, lean: LeanMinHash) -> set[int]:
        return set(self._lsh.query(lean))

    def insert(self, row: int, lean: LeanMinHash) -> None:
        self._lsh.insert(row, lean, check_duplication=False)


def chunk_collisions(band_keys: np.ndarray) -> list[list[tuple[int, int]]]:
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
