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
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from factory.quality.bands import DatasketchTables, SortedBands, chunk_collisions
from factory.quality.minhash import MinHasher
from factory.quality.settings import DedupSettings, EntryKind
from factory.quality.shingles import shingle_sets


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
        self._index: SortedBands | DatasketchTables
        if self.settings.index == "datasketch":
            self._index = DatasketchTables(bands, rows, self.hasher)
        else:
            self._index = SortedBands(bands, rows)
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
        that share a bucket with it (`chunk_collisions`) and were kept; they are few and checked
        one by one. The kept texts are indexed when the chunk is done.
        """
        if isinstance(self._index, DatasketchTables):
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
        assert isinstance(self._index, DatasketchTables)
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
        if isinstance(self._index, SortedBands):
            self._index.add(chunk.keys[positions], np.arange(first_row, end))
        else:
            for row, i in enumerate(positions, start=first_row):
                self._index.insert(row, chunk.keys[i])

    def _nearest_indexed(self, chunk: _Chunk) -> tuple[list[int], list[float]]:
        """For each text of the chunk, the most similar indexed text (row, exact Jaccard) among
        its LSH candidates; (-1, 0.0) if none."""
        if isinstance(self._index, SortedBands):
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
        if isinstance(self._index, SortedBands):
            keys = self._index.band_keys(sigs)
            return _Chunk(items, sets, sizes, keyed, sigs, keys, chunk_collisions(keys))
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
