"""Recall at the threshold: the template stream (bench/dedup_templates.py) against an exact greedy
dedup with the same similarity definition, at each threshold; speed on one core, against
datasketch's MinHashLSH with the same exact confirmation; memory on a long stream.

The reference does not share the deduper's candidate search: it counts the shingles every pair
of texts shares with one sparse matrix product (scipy), a block of texts at a time, and keeps
the pairs at or above the lowest threshold (integer comparison). The greedy dedup then walks the
stream: a text is dropped iff it reaches the threshold with a text kept before it.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterable

import numpy as np
from scipy import sparse

from factory.quality import Deduper, DedupSettings, shingle_sets

THRESHOLDS = (0.5, 0.55, 0.6, 0.7, 0.8)
SPREAD_BINS = np.round(np.arange(0.3, 1.0001, 0.05), 2)


def _ratio(threshold: float) -> tuple[int, int]:
    return DedupSettings(threshold=threshold).ratio()


def exact_pairs(texts: list[str], shingle_size: int, lowest: float, block: int = 512) -> dict:
    """Every pair (i > j) with exact Jaccard >= `lowest`: arrays i, j, inter, union; and the
    spread of the similarities of all pairs from 0.3 up (counts per 0.05 bin)."""
    sets = shingle_sets(texts, shingle_size)
    sizes = np.fromiter(map(len, sets), dtype=np.int64, count=len(sets))
    flat = np.concatenate(sets)
    _, column = np.unique(flat, return_inverse=True)
    rows = np.repeat(np.arange(len(sets)), sizes)
    x = sparse.csr_matrix((np.ones(len(flat), dtype=np.int32), (rows, column)), shape=(len(sets), column.max() + 1))
    xt = x.T.tocsc()
    num, den = _ratio(lowest)
    found: list[tuple[np.ndarray, ...]] = []
    spread = np.zeros(len(SPREAD_BINS) - 1, dtype=np.int64)
    for a in range(0, len(sets), block):
        b = min(a + block, len(sets))
        product = (x[a:b] @ xt[:, :b]).tocoo()
        i, j, inter = product.row.astype(np.int64) + a, product.col.astype(np.int64), product.data.astype(np.int64)
        earlier = j < i
        i, j, inter = i[earlier], j[earlier], inter[earlier]
        union = sizes[i] + sizes[j] - inter
        sim = inter / union
        spread += np.histogram(sim, bins=SPREAD_BINS)[0]
        keep = inter * den >= num * union
        found.append((i[keep], j[keep], inter[keep], union[keep]))
    i, j, inter, union = (np.concatenate(parts) for parts in zip(*found))
    order = np.lexsort((j, i))
    return {"i": i[order], "j": j[order], "inter": inter[order], "union": union[order], "spread": spread}


def greedy(n: int, pairs: dict, threshold: float) -> np.ndarray:
    """The exact greedy dedup: dropped[k] iff text k reaches `threshold` with a kept earlier one."""
    num, den = _ratio(threshold)
    at = pairs["inter"] * den >= num * pairs["union"]
    i, j = pairs["i"][at].tolist(), pairs["j"][at].tolist()
    dropped = np.zeros(n, dtype=bool)
    k = 0
    for text in range(n):
        while k < len(i) and i[k] == text:
            if not dropped[j[k]]:
                dropped[text] = True
            k += 1
    return dropped


def _one_core() -> set[int] | None:
    """Pin the process (all its threads) to one CPU; returns the previous set."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    return before


def timed(items: list[tuple[str, str]], settings: DedupSettings) -> tuple[Deduper, list, float, float]:
    """(deduper, verdicts, wall seconds, CPU seconds) of one stream, on one core."""
    before = _one_core()
    try:
        d = Deduper(settings)
        t0, c0 = time.perf_counter(), time.process_time()
        verdicts = d.check_and_add_many(items)
        return d, verdicts, time.perf_counter() - t0, time.process_time() - c0
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)


def score(verdicts: list, reference: np.ndarray, texts: list[str], threshold: float, shingle_size: int,
          ids: dict[str, int]) -> dict:
    ours = np.array([v.is_dup for v in verdicts])
    both = int((ours & reference).sum())
    # A drop is right if its similarity to a text kept before it (by us) is at or above the
    # threshold: recomputed here from the texts.
    num, den = _ratio(threshold)
    wrong = 0
    for k in np.flatnonzero(ours).tolist():
        a, b = shingle_sets([texts[k], texts[ids[verdicts[k].dup_of]]], shingle_size)
        inter = len(np.intersect1d(a, b, assume_unique=True))
        wrong += inter * den < num * (len(a) + len(b) - inter)
    return {
        "reference_drops": int(reference.sum()), "drops": int(ours.sum()), "both_drop": both,
        "recall": both / max(int(reference.sum()), 1), "precision": both / max(int(ours.sum()), 1),
        "drops_below_threshold": wrong,
        # Each drop checked exactly: its similarity to the kept text it names is at or above the
        # threshold. (`precision` against the reference is below this when a miss made the two
        # runs keep different texts, so that a later text's nearest kept text differs.)
        "verified_precision": 1 - wrong / max(int(ours.sum()), 1),
    }


def bench_thresholds(items: list[tuple[str, str]], datasketch_items: int, shingle_size: int,
                     log=print) -> dict:
    texts = [t for _, t in items]
    ids = {item_id: k for k, (item_id, _) in enumerate(items)}
    t0 = time.perf_counter()
    pairs = exact_pairs(texts, shingle_size, min(THRESHOLDS))
    reference_s = time.perf_counter() - t0
    log(f"template stream: exact pairs of {len(items)} texts in {reference_s:.0f}s")
    sims = pairs["inter"] / pairs["union"]
    rows = []
    for t in THRESHOLDS:
        reference = greedy(len(items), pairs, t)
        settings = DedupSettings(threshold=t)
        d, verdicts, wall, cpu = timed(items, settings)
        q = score(verdicts, reference, texts, t, shingle_size, ids)
        head = items[:datasketch_items]
        _, ours_head, ours_head_wall, _ = timed(head, settings)
        _, theirs, theirs_wall, _ = timed(head, settings.model_copy(update={"index": "datasketch"}))
        ref_head = reference[: len(head)]
        q_ds = score(theirs, ref_head, texts, t, shingle_size, ids)
        row = {
            "threshold": t, **q,
            "items_per_s": len(items) / wall, "cpu_items_per_s": len(items) / cpu, "wall_s": wall,
            "lsh_bands_rows": list(d.lsh_params),
            "key_hits_per_item": d.candidates_seen / len(items), "exact_checks_per_item": d.candidates_checked / len(items),
            "index_bytes_per_kept": d.index_bytes() / max(len(d), 1),
            "pairs_within_0.025": int((np.abs(sims - t) <= 0.025).sum()),
            "datasketch": {
                "items": len(head), "items_per_s": len(head) / theirs_wall, "recall": q_ds["recall"],
                "precision": q_ds["precision"], "ours_items_per_s_same_items": len(head) / ours_head_wall,
            },
            "speedup_vs_datasketch": theirs_wall / ours_head_wall,
        }
        rows.append(row)
        log(f"  t={t}: recall {row['recall']:.4f} precision {row['precision']:.4f} (verified {row['verified_precision']:.4f}) "
            f"{row['cpu_items_per_s']:,.0f} items/s "
            f"(datasketch {row['datasketch']['items_per_s']:,.0f}, x{row['speedup_vs_datasketch']:.1f})")
    return {
        "items": len(items), "reference_seconds": reference_s,
        "pairs_at_or_above_0.5": int(len(sims)),
        "similarity_spread": {f"{lo:.2f}-{hi:.2f}": int(c) for lo, hi, c in zip(SPREAD_BINS[:-1], SPREAD_BINS[1:], pairs["spread"])},
        "thresholds": rows,
    }


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def bench_memory(items: Iterable[tuple[str, str]], n: int, settings: DedupSettings) -> dict:
    """A long stream through one deduper, verdicts counted, not kept: resident memory it adds
    per kept text, and its time. The texts are made as the stream goes (not held)."""
    rss0 = _rss_bytes()
    before = _one_core()
    try:
        d = Deduper(settings)
        t0, c0 = time.perf_counter(), time.process_time()
        dropped = sum(v.is_dup for v in d.iter_check_and_add(items))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)
    rss1 = _rss_bytes()
    kept = len(d)
    return {
        "items": n, "kept": kept, "dropped": dropped, "threshold": settings.threshold,
        "seconds_with_text_generation": wall, "cpu_seconds": cpu, "items_per_s_with_generation": n / wall,
        "rss_before_bytes": rss0, "rss_after_bytes": rss1, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "rss_added_per_kept_bytes": (rss1 - rss0) / max(kept, 1),
        "index_arrays_per_kept_bytes": d.index_bytes() / max(kept, 1),
    }
