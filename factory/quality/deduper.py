"""Near-duplicate detection: MinHash LSH over normalised character n-grams, checked exactly.

Why character n-grams: Alpaca's filter (ROUGE-L > 0.7 against every kept instruction) tokenises
with rouge-score, which keeps only [a-z0-9] words, so a Korean instruction becomes an empty token
list and nothing is ever caught. Character n-grams of the normalised text work for any script and
do not care about Korean spacing.

The pipeline, for a chunk of texts at a time:

1. normalise (NFKC, lowercase, Hangul syllables split into jamo, letters and digits only); cut
   into overlapping `shingle_size`-character windows; hash each to 32 bits; keep the set.
2. Candidates. Each text gets a MinHash signature (datasketch's "affine32" values, one numpy
   outer product per block of texts) and is indexed under its LSH bands, laid out so that a pair
   exactly at the threshold is a candidate with probability 0.99 or more (index='bands'). With
   index='prefix', a short text (up to `exact_max_shingles` shingles) is indexed under its prefix
   instead (factory.quality.prefix): two texts at or above the threshold always share a prefix
   shingle, so no pair is ever missed; only long texts go through the bands.
3. Candidates whose sizes or bitmaps (factory.quality.bitmaps) rule them out are pruned; the
   rest are checked with the exact Jaccard similarity of the two hash sets. A text is a
   duplicate iff that exact Jaccard >= `threshold`, compared in integers (|A & B| * den >= num * |A | B| for threshold num / den):
   a candidate never drops anything by itself.

A text with no letter or digit (emoji only, punctuation only) is never a duplicate nor a
candidate: it would otherwise equal every other such text (the filters reject it as `no_text`).

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

from factory.quality.bands import DatasketchTables, KeyIndex, SortedBands, chunk_collisions
from factory.quality.bitmaps import bitmaps, gather, overlap_bound
from factory.quality.minhash import MinHasher
from factory.quality.prefix import TokenOrder
from factory.quality.settings import DedupSettings, EntryKind
from factory.quality.shingles import shingle_sets
from factory.quality.store import Rows


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
    bitmaps: np.ndarray  # (n, WORDS): each set's bitmap (factory.quality.bitmaps)
    prefix: tuple[np.ndarray, np.ndarray, int]  # (prefix shingles, owner, order version)
    bands: tuple[np.ndarray, np.ndarray]  # (band keys, owner) of the texts indexed by MinHash
    leans: list[Any]  # a LeanMinHash per text (None if empty), for the datasketch index
    collisions: dict[int, list[tuple[int, Rank]]]  # text -> (earlier text, rank) of its near enough ones


# A pair's rank: (at or above the threshold, by the integer test; exact Jaccard). Duplicates
# come before every non-duplicate, then the most similar first.
Rank = tuple[bool, float]
_NONE: Rank = (False, 0.0)
_UNIQUE = DupCheck(False, None, 0.0)  # the verdict on a text with no candidate (frozen: shared)


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
        self._num, self._den = self.settings.ratio()
        bands, rows = self.settings.lsh_params()
        # Only the permutations the bands use are computed (num_perm is the most there may be).
        self.hasher = MinHasher(bands * rows, self.settings.seed)
        self._bands: SortedBands | DatasketchTables
        if self.settings.index == "datasketch":
            self._bands = DatasketchTables(bands, rows, self.hasher)
        else:
            self._bands = SortedBands(bands, rows)
        self._prefix = KeyIndex()
        self._order = TokenOrder()
        self._rows = Rows()
        self.candidates_seen = 0  # candidate pairs (for benchmarks)
        self.candidates_checked = 0  # of those, checked exactly (past the size filter)

    @property
    def lsh_params(self) -> tuple[int, int]:
        return self._bands.bands, self._bands.rows

    def __len__(self) -> int:
        return len(self._rows)

    def count(self, kind: EntryKind) -> int:
        return self._rows.count(kind)

    def __contains__(self, item_id: str) -> bool:
        return self._rows.known("kept", item_id)

    def index_bytes(self) -> int:
        """Bytes of the numpy arrays behind the index (sets, prefix and band entries)."""
        nbytes = self._rows.nbytes() + self._prefix.nbytes()
        return nbytes + (self._bands.nbytes() if isinstance(self._bands, SortedBands) else 0)

    # -- adding without checking (seeds, eval questions, a resumed run's kept examples) ---------

    def add(self, item_id: str, text: str, kind: EntryKind = "kept") -> None:
        self.add_many([(item_id, text)], kind=kind)

    def add_many(self, items: Iterable[tuple[str, str]], kind: EntryKind = "kept") -> int:
        """Index these texts as they are (no check among them). Returns how many were added.
        If it fails (a repeated id), nothing of this call stays indexed."""
        start = len(self._rows)
        try:
            for chunk in self._prepared(items):
                self._check_ids(chunk, kind)
                self._keep(chunk, list(range(len(chunk.items))), kind)
        except BaseException:
            self._truncate(start)
            raise
        return len(self._rows) - start

    # -- streaming check -----------------------------------------------------------------------

    def check(self, text: str) -> DupCheck:
        """The verdict on `text` against everything indexed, without adding it."""
        chunk = self._current(self._prepare([("", text)]))
        row, rank = self._nearest_indexed(chunk)
        return self._verdict(row[0], rank[0])

    def check_and_add(self, item_id: str, text: str) -> DupCheck:
        """Check `text` against everything kept so far; keep (index) it if it is not a duplicate."""
        return self.check_and_add_many([(item_id, text)])[0]

    def check_and_add_many(self, items: Iterable[tuple[str, str]]) -> list[DupCheck]:
        """`check_and_add` for each item in order: each is checked against everything kept
        before it, earlier items of the same call included. Shingling, prefixes and look-ups are
        done a chunk of items at a time. All or nothing: if it fails (a repeated id, an item
        that is not an (id, text) pair), nothing of this call stays indexed, so the index only
        ever holds texts whose verdicts were returned."""
        start = len(self._rows)
        try:
            return list(self.iter_check_and_add(items))
        except BaseException:
            self._truncate(start)
            raise

    def iter_check_and_add(self, items: Iterable[tuple[str, str]]) -> Iterator[DupCheck]:
        """`check_and_add_many` as a generator. A chunk's verdicts come once the whole chunk is
        checked and its kept texts indexed: consume it to the end."""
        for chunk in self._prepared(items):
            self._check_ids(chunk, "kept")
            yield from self._check_chunk(self._current(chunk))

    # -- internals -----------------------------------------------------------------------------

    def _check_chunk(self, chunk: _Chunk) -> list[DupCheck]:
        """Check a chunk in order: the same verdicts as one text at a time.

        The nearest text among what was indexed before the chunk is found for all its texts at
        once (`_nearest_indexed`). Within the chunk, a text's candidates are the earlier texts
        that share a key with it (`chunk_collisions`) and were kept; they are few and checked
        one by one. The kept texts are indexed when the chunk is done.
        """
        if isinstance(self._bands, DatasketchTables):
            return [self._check_one(chunk, i) for i in range(len(chunk.items))]
        best_row, best_rank = self._nearest_indexed(chunk)
        kept: list[int] = []
        row_of: dict[int, int] = {}  # chunk position -> row, for the kept ones
        first_row = len(self._rows)
        verdicts = []
        for i in range(len(chunk.items)):
            row, rank = best_row[i], best_rank[i]
            for o, o_rank in chunk.collisions.get(i, ()):
                if o_rank > rank and o in row_of:
                    row, rank = row_of[o], o_rank
            if row >= first_row and rank[0]:  # a duplicate of a text kept earlier in this chunk
                verdict = DupCheck(True, chunk.items[kept[row - first_row]][0], rank[1], "kept")
            else:
                verdict = self._verdict(row, rank)
            if not verdict.is_dup:
                row_of[i] = first_row + len(kept)
                kept.append(i)
            verdicts.append(verdict)
        self._keep(chunk, kept, "kept")
        return verdicts

    def _check_one(self, chunk: _Chunk, i: int) -> DupCheck:
        """One text through the datasketch index (the reference path): look up, check, insert."""
        assert isinstance(self._bands, DatasketchTables)
        lean = chunk.leans[i]
        found = sorted(self._bands.query(lean)) if lean is not None else []
        rows = np.array(found, dtype=np.int64)
        best_row, best_rank = self._nearest_of(chunk, np.full(len(rows), i, dtype=np.int64), rows)
        verdict = self._verdict(best_row[i], best_rank[i])
        if not verdict.is_dup:
            self._keep(chunk, [i], "kept")
        return verdict

    def _keep(self, chunk: _Chunk, positions: list[int], kind: EntryKind) -> None:
        first_row = len(self._rows)
        self._rows.extend([chunk.items[i][0] for i in positions], kind, [chunk.sets[i] for i in positions],
                          chunk.bitmaps[positions])
        self._index_rows(chunk, positions, first_row)

    def _check_ids(self, chunk: _Chunk, kind: EntryKind) -> None:
        """Refuse a chunk with an id already indexed or repeated, before anything is changed."""
        ids = [item_id for item_id, _ in chunk.items]
        if len(set(ids)) != len(ids) or any(self._rows.known(kind, i) for i in ids):
            seen: set[str] = set()
            for i in ids:
                if self._rows.known(kind, i) or i in seen:
                    raise ValueError(f"{kind} id {i!r} is given twice; ids must be unique")
                seen.add(i)

    def _index_rows(self, chunk: _Chunk, positions: list[int], first_row: int) -> None:
        """Index the chunk's texts at `positions`, stored as rows first_row, first_row + 1, ..."""
        row_of = np.full(len(chunk.items), -1, dtype=np.int64)
        row_of[positions] = np.arange(first_row, first_row + len(positions))
        if isinstance(self._bands, DatasketchTables):
            for i in positions:
                if chunk.leans[i] is not None:
                    self._bands.insert(int(row_of[i]), chunk.leans[i])
            return
        keys, owner, _ = chunk.prefix
        take = row_of[owner] >= 0
        self._prefix.add_flat(keys[take], row_of[owner[take]])
        keys, owner = chunk.bands
        take = row_of[owner] >= 0
        self._bands.add_flat(keys[take], row_of[owner[take]])
        if self.settings.index == "prefix" and self._order.due(len(self._rows)):
            self._relearn()

    def _relearn(self) -> None:
        """Learn the shingle order from everything indexed and rebuild the prefix index in it."""
        self._order.learn(self._rows.flat, len(self._rows))
        keys, owner, _ = self._order.prefixes(
            self._rows.flat, self._rows.sizes, self._num, self._den, self._exact(self._rows.sizes))
        self._prefix.clear()
        self._prefix.add_flat(keys, owner)

    def _truncate(self, rows: int) -> None:
        """Forget every row >= `rows` (a failed call leaves the index as it found it)."""
        self._rows.truncate(rows)
        self._prefix.truncate(rows)
        self._bands.truncate(rows)

    def _nearest_indexed(self, chunk: _Chunk) -> tuple[list[int], list[Rank]]:
        """For each text of the chunk, the best indexed candidate (row, rank); (-1, 0.0) if none."""
        if isinstance(self._bands, DatasketchTables):
            pairs = [(q, r) for q, lean in enumerate(chunk.leans) if lean is not None
                     for r in sorted(self._bands.query(lean))]
            query = np.array([q for q, _ in pairs], dtype=np.int64)
            rows = np.array([r for _, r in pairs], dtype=np.int64)
            return self._nearest_of(chunk, query, rows)
        q1, r1 = self._prefix.query_flat(chunk.prefix[0], chunk.prefix[1], unique=False)
        q2, r2 = self._bands.query_flat(*chunk.bands, unique=False)
        return self._nearest_of(chunk, np.concatenate((q1, q2)), np.concatenate((r1, r2)))

    def _nearest_of(self, chunk: _Chunk, query: np.ndarray, rows: np.ndarray) -> tuple[list[int], list[Rank]]:
        """The best of the candidate pairs (chunk text `query[k]`, indexed `rows[k]`, a pair
        possibly more than once) per text: (row, rank), (-1, _NONE) if none."""
        best_row, best_rank = [-1] * len(chunk.items), [_NONE] * len(chunk.items)
        self.candidates_seen += len(rows)
        if not len(rows):
            return best_row, best_rank
        query, rows = self._plausible(
            query, rows, chunk.sizes[query], self._rows.sizes[rows], chunk.bitmaps, self._rows.bitmaps)
        if len(rows):
            pair = np.unique((query << 32) | rows)  # each pair once
            query, rows = pair >> 32, pair & 0xFFFFFFFF
            shingles, csize = self._rows.gather(rows)
            ranks = self._ranks(chunk, query, shingles, csize)
            for q, r, rank in zip(query.tolist(), rows.tolist(), ranks):
                if rank > best_rank[q]:
                    best_row[q], best_rank[q] = r, rank
        return best_row, best_rank

    def _plausible(
        self, query: np.ndarray, rows: np.ndarray, qsize: np.ndarray, csize: np.ndarray, qbits: np.ndarray, cbits: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The pairs that may reach the threshold; the rest cannot. The overlap of two sets is at
        most the smaller one and at most the bitmap bound (factory.quality.bitmaps); and
        J >= t  <=>  |A & B| * (den + num) >= num * (|A| + |B|). (With the smaller size as the
        overlap this is the size test |A & B| / |A | B| <= min / max.) `qbits` and `cbits` are
        all the bitmaps `query` and `rows` index into."""
        num, den = self._num, self._den
        bound = np.minimum(overlap_bound(gather(qbits, query), gather(cbits, rows), qsize, csize), np.minimum(qsize, csize))
        keep = bound * (den + num) >= num * (qsize + csize)
        self.candidates_checked += int(keep.sum())
        return query[keep], rows[keep]

    def _ranks(self, chunk: _Chunk, query: np.ndarray, shingles: np.ndarray, csize: np.ndarray) -> list[Rank]:
        """The rank of each pair (chunk text `query[k]`, the k-th set of `shingles`, `csize[k]`
        long): whether it is at or above the threshold, and its exact Jaccard. The
        intersections are counted all at once: every shingle, tagged with its query's position,
        looked up in the chunk's sorted tagged shingles."""
        num, den = self._num, self._den
        probe = (np.repeat(query.astype(np.uint64), csize) << np.uint64(32)) | shingles
        pos = np.searchsorted(chunk.keyed, probe)
        np.minimum(pos, len(chunk.keyed) - 1, out=pos)
        inter = np.add.reduceat(chunk.keyed[pos] == probe, np.cumsum(csize) - csize, dtype=np.int64)
        union = chunk.sizes[query] + csize - inter
        return list(zip((inter * den >= num * union).tolist(), (inter / union).tolist()))

    def _in_chunk(self, chunk: _Chunk, later: np.ndarray, earlier: np.ndarray) -> dict[int, list[tuple[int, Rank]]]:
        """For the (later, earlier) pairs of texts of the chunk that share a key: per later text,
        the earlier ones that may be at the threshold, with their ranks (all checked at once;
        whether the earlier text is kept is decided as the chunk is walked)."""
        self.candidates_seen += len(later)
        later, earlier = self._plausible(
            later, earlier, chunk.sizes[later], chunk.sizes[earlier], chunk.bitmaps, chunk.bitmaps)
        out: dict[int, list[tuple[int, Rank]]] = {}
        if not len(later):
            return out
        flat = (chunk.keyed & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        starts = np.cumsum(chunk.sizes) - chunk.sizes
        csize = chunk.sizes[earlier]
        offsets = np.repeat(starts[earlier] - (np.cumsum(csize) - csize), csize)
        ranks = self._ranks(chunk, later, flat[offsets + np.arange(int(csize.sum()))], csize)
        for lat, ear, rank in zip(later.tolist(), earlier.tolist(), ranks):
            out.setdefault(lat, []).append((ear, rank))
        return out

    def _verdict(self, row: int, rank: Rank) -> DupCheck:
        if row >= 0 and rank[0]:
            return DupCheck(True, self._rows.ids[row], rank[1], self._rows.kind(row))
        return _UNIQUE if rank is _NONE else DupCheck(False, None, rank[1])

    def _exact(self, sizes: np.ndarray) -> np.ndarray | None:
        """Which sets are found through their prefix (None: all of them)."""
        return sizes <= self.settings.exact_max_shingles

    def _banded(self, sizes: np.ndarray) -> np.ndarray:
        """Which sets are found through MinHash LSH: all with index='bands'; with 'prefix',
        those long enough to be at the threshold with a text too long for the prefix join."""
        if self.settings.index != "prefix":
            return sizes > 0
        return (sizes > 0) & (sizes * self._den >= self._num * (self.settings.exact_max_shingles + 1))

    def _prepared(self, items: Iterable[tuple[str, str]]) -> Iterator[_Chunk]:
        """Chunks of items with their shingles, prefixes and band keys. The next chunk is
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
        _check_pairs(items)
        sets = shingle_sets([t for _, t in items], self.settings.shingle_size)
        sizes = np.fromiter(map(len, sets), dtype=np.int64, count=len(sets))
        flat = np.concatenate(sets)
        keyed = (np.repeat(np.arange(len(sets), dtype=np.uint64), sizes) << np.uint64(32)) | flat
        bits = bitmaps(flat, sizes)
        empty = np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
        if self.settings.index == "datasketch":
            sigs = self.hasher.signatures(sets)
            leans = [self.hasher.lean(sig) if n else None for sig, n in zip(sigs, sizes.tolist())]
            return _Chunk(items, sets, sizes, keyed, bits, (*empty, 0), empty, leans, {})
        prefix = empty + (0,)
        if self.settings.index == "prefix":
            prefix = self._order.prefixes(flat, sizes, self._num, self._den, self._exact(sizes))
        bands = empty
        banded = np.flatnonzero(self._banded(sizes))
        if len(banded):
            assert isinstance(self._bands, SortedBands)
            keys = self._bands.band_keys(self.hasher.signatures([sets[i] for i in banded.tolist()]))
            bands = keys.ravel(), np.repeat(banded, self._bands.bands)
        chunk = _Chunk(items, sets, sizes, keyed, bits, prefix, bands, [], {})
        return self._with_collisions(chunk)

    def _with_collisions(self, chunk: _Chunk) -> _Chunk:
        keys = np.concatenate((chunk.prefix[0], chunk.bands[0]))
        owner = np.concatenate((chunk.prefix[1], chunk.bands[1]))
        return chunk._replace(collisions=self._in_chunk(chunk, *chunk_collisions(keys, owner)))

    def _current(self, chunk: _Chunk) -> _Chunk:
        """The chunk with prefixes in the current shingle order (it may have been learnt again
        since the chunk was prepared)."""
        if self.settings.index != "prefix" or chunk.prefix[2] == self._order.version:
            return chunk
        flat = np.concatenate(chunk.sets)
        prefix = self._order.prefixes(flat, chunk.sizes, self._num, self._den, self._exact(chunk.sizes))
        return self._with_collisions(chunk._replace(prefix=prefix))


def _check_pairs(items: list[tuple[str, str]]) -> None:
    # The common case in a few C-level passes; the item-by-item walk only to name the bad one.
    if set(map(type, items)) == {tuple} and set(map(len, items)) == {2}:
        ids, texts = zip(*items)
        if set(map(type, ids)) == {str} and set(map(type, texts)) == {str}:
            return
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            raise TypeError(f"each item must be an (id, text) pair of strings, not {item!r:.80}")


def _chunks(items: Iterable[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    chunk: list[tuple[str, str]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
