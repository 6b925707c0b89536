"""Candidate indexes: each gives the rows that share at least one key with a query.

The keys are a text's prefix shingles (factory.quality.prefix) or its MinHash LSH band keys; a
shared key makes a candidate, and the exact check decides it.
"""

from __future__ import annotations

import numpy as np
from datasketch import LeanMinHash, MinHashLSH

from factory.quality.minhash import MinHasher

_BAND_MIX = np.uint64(0xC2B2AE3D27D4EB4F)


class KeyIndex:
    """(key, row) entries as sorted arrays, kept in a few sorted runs that merge as they grow (a
    log-structured merge); a text has any number of keys.

    Looking up the keys of a whole chunk is then a handful of `np.searchsorted` calls, and adding
    a chunk's kept rows one sort. The same index as dicts of buckets, probed per text, costs
    several times more on a large run: a dict operation per key that each miss the CPU cache.
    datasketch.MinHashLSH stores buckets that way (bench/dedup.py measures both). Rows are uint32
    (4 bytes an entry less than int64; an index of four billion texts is not this one's job).
    """

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted keys, their rows)

    def __len__(self) -> int:
        return sum(len(k) for k, _ in self._runs)

    def nbytes(self) -> int:
        return sum(k.nbytes + r.nbytes for k, r in self._runs)

    def add_flat(self, keys: np.ndarray, rows: np.ndarray) -> None:
        """Index `rows[k]` under `keys[k]` (uint64)."""
        if not len(keys):
            return
        order = np.argsort(keys, kind="stable")
        self._runs.append((keys[order], rows[order].astype(np.uint32)))
        # Merge while the newer run is at least half the size of the older: log2(n) runs at most.
        while len(self._runs) >= 2 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            (k2, r2), (k1, r1) = self._runs.pop(), self._runs.pop()
            merged, rows_ = np.concatenate((k1, k2)), np.concatenate((r1, r2))
            order = np.argsort(merged, kind="stable")  # timsort: two sorted runs merge in one pass
            self._runs.append((merged[order], rows_[order]))

    def query_flat(self, keys: np.ndarray, owner: np.ndarray, unique: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(owner, row) pairs: row shares a key with one of owner's keys. Each pair once, or
        (unique=False) once per shared key, which spares a sort when most pairs are filtered."""
        order = np.argsort(keys)  # sorted probes walk the runs in order: far fewer cache misses
        probes, owners = keys[order], owner[order].astype(np.int64)
        found_q, found_r = [], []
        for run_keys, rows in self._runs:
            lo = np.searchsorted(run_keys, probes, side="left")
            hit = run_keys[np.minimum(lo, len(run_keys) - 1)] == probes
            if not hit.any():
                continue
            # Only the probes that hit need the end of their range.
            lo = lo[hit]
            n = np.searchsorted(run_keys, probes[hit], side="right") - lo
            # Expand each [lo, lo + n) range into positions.
            pos = np.repeat(lo - np.cumsum(n) + n, n) + np.arange(int(n.sum()))
            found_q.append(np.repeat(owners[hit], n))
            found_r.append(rows[pos].astype(np.int64))
        if not found_q:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        if not unique:
            return np.concatenate(found_q), np.concatenate(found_r)
        pair = np.sort((np.concatenate(found_q) << 32) | np.concatenate(found_r))
        pair = pair[np.concatenate(([True], pair[1:] != pair[:-1]))]  # each pair once (several keys can be shared)
        return pair >> 32, pair & 0xFFFFFFFF

    def truncate(self, rows: int) -> None:
        """Forget every row >= `rows`."""
        self._runs = [(k[r < rows], r[r < rows]) for k, r in self._runs]
        self._runs = [run for run in self._runs if len(run[0])]

    def clear(self) -> None:
        self._runs = []


class SortedBands(KeyIndex):
    """MinHash LSH: a text's keys are its band keys, each band's rows hashed into one number."""

    def __init__(self, bands: int, rows: int) -> None:
        super().__init__()
        self.bands, self.rows = bands, rows
        # Distinct salts make equal rows in different bands different keys, so all bands share
        # one sorted array (and no band key of one band equals one of another).
        self._salt = np.random.default_rng(0x5EED).integers(0, 2**63, bands, dtype=np.uint64)[None, :]

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """(len(signatures), bands) uint32: each band's rows hashed into one number. 32 bits
        halve the index: two different bands of a million texts share a key by chance for one
        query in a few hundred, an extra candidate that the checks then discard."""
        used = signatures[:, : self.bands * self.rows].astype(np.uint64)
        used = used.reshape(len(signatures), self.bands, self.rows)
        h = np.zeros((len(signatures), self.bands), dtype=np.uint64)
        for r in range(self.rows):
            h = h * _BAND_MIX + used[:, :, r]
        h ^= self._salt
        return ((h ^ (h >> np.uint64(32))) & np.uint64(0xFFFFFFFF)).astype(np.uint32)

    def add(self, band_keys: np.ndarray, rows: np.ndarray) -> None:
        self.add_flat(band_keys.ravel(), np.repeat(rows, self.bands))

    def query(self, band_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query, row) pairs, each once: row shares a bucket with query's band keys."""
        owner = np.repeat(np.arange(len(band_keys), dtype=np.int64), self.bands)
        return self.query_flat(band_keys.ravel(), owner)


class DatasketchTables:
    """The same banding through datasketch.MinHashLSH and LeanMinHash (the reference index)."""

    def __init__(self, bands: int, rows: int, hasher: MinHasher) -> None:
        self.bands, self.rows = bands, rows
        self._hasher = hasher
        self._lsh = MinHashLSH(num_perm=hasher.num_perm, params=(bands, rows))
        self._rows: list[int] = []

    def query(self, lean: LeanMinHash) -> set[int]:
        return set(self._lsh.query(lean))

    def insert(self, row: int, lean: LeanMinHash) -> None:
        self._lsh.insert(row, lean, check_duplication=False)
        self._rows.append(row)

    def truncate(self, rows: int) -> None:
        while self._rows and self._rows[-1] >= rows:
            self._lsh.remove(self._rows.pop())


def chunk_collisions(keys: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(later, earlier) pairs of texts of a chunk that share a key, each pair once, sorted by
    later text (keys[k] belongs to text owner[k])."""
    # One sort of (key << 32 | text): by key, then by text, so equal keys come in chunk order.
    both = np.sort((keys.astype(np.uint64) << np.uint64(32)) | owner.astype(np.uint64))
    ks, os_ = both >> np.uint64(32), (both & np.uint64(0xFFFFFFFF)).astype(np.int64)
    same = np.concatenate(([False], ks[1:] == ks[:-1]))
    if not same.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    # Each entry pairs with every earlier entry of its run of equal keys.
    run_start = np.maximum.accumulate(np.where(~same, np.arange(len(ks)), 0))
    back = np.arange(len(ks)) - run_start
    later = np.repeat(np.arange(len(ks)), back)
    earlier = np.repeat(run_start, back) + (np.arange(int(back.sum())) - np.repeat(np.cumsum(back) - back, back))
    later, earlier = os_[later], os_[earlier]
    distinct = later != earlier
    pair = np.unique((later[distinct] << 32) | earlier[distinct])
    return pair >> 32, pair & 0xFFFFFFFF
