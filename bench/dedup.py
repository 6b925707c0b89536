"""Benchmark of the near-duplicate check, factory.quality (just bench-dedup): writes bench/results/dedup.json.

0. The template stream (bench/dedup_templates.py, bench/dedup_recall.py): texts made the way a
   model writes an instruction set, pair similarities spread over 0.3-1.0; at each threshold of
   0.5, 0.55, 0.6, 0.7, 0.8, recall and precision against an exact greedy dedup with the same
   similarity definition, items/s on one core, and datasketch's MinHashLSH with the same exact
   confirmation on the first --templates-datasketch items. `--memory-items N` instead streams N
   template texts through one deduper and reports resident memory per kept text and the time
   (bench/results/dedup_1m.json).
1. A synthetic stream (bench/dedup_corpus.py) of Korean and English instruction-like texts with
   planted near-duplicates and planted template-sharing non-duplicates goes through
   `Deduper.check_and_add_many`, as the generate loop feeds it: throughput (items_per_s, wall
   clock, streaming insert + query, median of --repeat runs), recall and precision against the
   planted truth.
2. The index rebuilt from a run's examples.jsonl, as a resumed run does (rebuild_items_per_s).
3. The same banding through datasketch.MinHashLSH (a prefix): its speed, and whether its
   decisions equal ours.
4. On a 5,000-item subset (whole families), English part: Alpaca's rule (ROUGE-L F > 0.7 against
   every kept instruction, computed exactly for all pairs) against ours: time
   (rouge_subset_speedup) and agreement of the keep/drop decisions (rouge_agreement).
5. Where the threshold sits: graded English pairs (rewordings with 1-8 edits, template siblings
   with 1..all slots refilled, unrelated texts) scored by both rules, and the stream rerun at each
   threshold of --grid; the recommended threshold is the one that agrees best with Alpaca's rule
   while recall and precision on the planted pairs stay on target.

ROUGE-L is implemented here (rouge-score is not a dependency): rouge-score's tokeniser (lowercase,
[a-z0-9]+ tokens, no stemmer, as Alpaca calls it) and its F-measure 2PR/(P+R), with the LCS length
computed bit-parallel (Hyyrö 2004): the same length as rouge-score's DP table, faster, so the
speedup reported is if anything understated. If rouge-score is importable, the script
cross-checks its scores on random pairs (rouge_check).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import datasketch
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dedup_corpus import Item, calibration_pairs, expected_duplicates, make_stream
from dedup_recall import bench_memory, bench_thresholds
from dedup_templates import template_stream

from bench.provenance import write_result

from factory.quality import Deduper, DedupSettings, load_run_deduper, shingle_sets
from schemas import Example, JsonlWriter

TARGETS = {"items_per_s": 20_000, "recall": 0.95, "precision": 0.95}
TEMPLATE_TARGETS = {"recall": 0.98, "precision": 1.0, "items_per_s_one_core": 20_000, "speedup_vs_datasketch": 5.0,
                    "rss_per_kept_bytes": 1536}
ALPACA_ROUGE = 0.7

# ------------------------------------------------------------------------------------------------
# ROUGE-L, as rouge-score computes it


_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """rouge-score's tokenize(text, stemmer=None): Hangul and every other script vanish."""
    return _NON_ALNUM.sub(" ", text.lower()).split()


class LcsTable:
    """Bit masks of one token sequence, for the bit-parallel LCS length against others."""

    def __init__(self, tokens: list[str]) -> None:
        self.m = len(tokens)
        self.masks: dict[str, int] = {}
        for i, t in enumerate(tokens):
            self.masks[t] = self.masks.get(t, 0) | (1 << i)
        self.full = (1 << self.m) - 1

    def lcs(self, other: list[str]) -> int:
        v = self.full
        get = self.masks.get
        for t in other:
            u = v & get(t, 0)
            v = (v + u) | (v - u)
        return self.m - (v & self.full).bit_count()


def rouge_l_f(a: LcsTable, b_tokens: list[str]) -> float:
    if a.m == 0 or not b_tokens:
        return 0.0
    lcs = a.lcs(b_tokens)
    p, r = lcs / len(b_tokens), lcs / a.m
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _dp_lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def check_rouge(texts: list[str], rng: random.Random, pairs: int = 2000) -> dict:
    """Our ROUGE-L against a plain DP LCS, and against rouge-score itself when it is installed."""
    worst_dp = 0
    checked_rs, worst_rs = 0, 0.0
    try:
        from rouge_score import rouge_scorer  # type: ignore[import-not-found]

        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    except ImportError:
        scorer = None
    for _ in range(pairs):
        a, b = rng.sample(texts, 2)
        ta, tb = rouge_tokens(a), rouge_tokens(b)
        worst_dp = max(worst_dp, abs(LcsTable(ta).lcs(tb) - _dp_lcs(ta, tb)))
        if scorer is not None:
            ref = scorer.score(a, b)["rougeL"].fmeasure
            worst_rs = max(worst_rs, abs(ref - rouge_l_f(LcsTable(ta), tb)))
            checked_rs += 1
    return {
        "pairs_vs_dp_lcs": pairs, "max_lcs_difference": worst_dp,
        "pairs_vs_rouge_score": checked_rs, "max_f_difference_vs_rouge_score": worst_rs if scorer else None,
    }


def alpaca_all_pairs(texts: list[str]) -> tuple[list[bool], np.ndarray, float]:
    """Alpaca's filter, exactly: ROUGE-L F of every pair (i < j); item j is dropped if its score
    against an earlier *kept* item is > 0.7. Returns the decisions, the score matrix, seconds."""
    start = time.perf_counter()
    tokens = [rouge_tokens(t) for t in texts]
    tables = [LcsTable(t) for t in tokens]
    n = len(texts)
    scores = np.zeros((n, n), dtype=np.float32)
    dropped: list[bool] = []
    for j in range(n):
        row = [rouge_l_f(tables[i], tokens[j]) for i in range(j)]
        scores[j, :j] = row
        dropped.append(any(s > ALPACA_ROUGE and not dropped[i] for i, s in enumerate(row)))
    return dropped, scores, time.perf_counter() - start


# ------------------------------------------------------------------------------------------------
# Scoring against the planted truth


def score(items: list[Item], verdicts: list) -> dict:
    expected = expected_duplicates(items)
    family = {it.id: it.family for it in items}
    tp = fp = fn = 0
    by_lang: dict[str, Counter] = {"ko": Counter(), "en": Counter()}
    flagged_by_kind: Counter = Counter()
    fps, fns = [], []
    for it, v, exp in zip(items, verdicts, expected):
        right = v.is_dup and exp and family.get(v.dup_of) == it.family
        c = by_lang[it.lang]
        c["positives"] += exp
        if v.is_dup:
            flagged_by_kind[it.kind] += 1
            c["flagged"] += 1
            if right:
                tp += 1
                c["tp"] += 1
            else:
                fp += 1
                if len(fps) < 8:
                    fps.append({"text": it.text, "kind": it.kind, "dup_of": v.dup_of, "similarity": round(v.similarity, 3)})
        if exp and not right:
            fn += 1
            if len(fns) < 8:
                src = next(x.text for x in items if x.family == it.family)
                fns.append({"text": it.text, "source": src, "similarity": round(v.similarity, 3)})
    kinds = Counter(it.kind for it in items)
    return {
        "recall": tp / max(tp + fn, 1),
        "precision": tp / max(tp + fp, 1),
        "true_positives": tp, "false_positives": fp, "false_negatives": fn,
        "by_lang": {
            lang: {"recall": c["tp"] / max(c["positives"], 1), "precision": c["tp"] / max(c["flagged"], 1)}
            for lang, c in by_lang.items()
        },
        "flagged_share_by_kind": {k: flagged_by_kind[k] / kinds[k] for k in sorted(kinds)},
        "false_positive_examples": fps,
        "false_negative_examples": fns,
    }


# ------------------------------------------------------------------------------------------------


def run_stream(items: list[Item], settings: DedupSettings, repeat: int = 1) -> tuple[Deduper, list, dict]:
    """Stream `items` through a fresh Deduper `repeat` times (the machine is shared: one run can
    be slowed by others); the timing reported is the median run's."""
    pairs = [(it.id, it.text) for it in items]
    runs = []
    for _ in range(repeat):
        dd = Deduper(settings)
        load = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        verdicts = dd.check_and_add_many(pairs)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        runs.append({"items_per_s": len(items) / wall, "wall_s": wall, "cpu_s": cpu,
                     "load_average_1min_before": load, "load_average_1min_after": os.getloadavg()[0]})
    median = sorted(runs, key=lambda r: r["items_per_s"])[len(runs) // 2]
    return dd, verdicts, {
        **median, "cpu_items_per_s": len(items) / median["cpu_s"], "runs": runs,
        "lsh_candidates_per_item": dd.candidates_seen / len(items),
        "exact_checks_per_item": dd.candidates_checked / len(items),
    }


def bench_rebuild(items: list[Item], verdicts: list, settings: DedupSettings) -> dict:
    """A resumed run: the kept examples in examples.jsonl, the index rebuilt from them."""
    with tempfile.TemporaryDirectory() as run:
        kept = [it for it, v in zip(items, verdicts) if not v.is_dup]
        with JsonlWriter(Path(run) / "examples.jsonl") as w:
            w.append(Example(id=it.id, instruction=it.text, output="-", lang=it.lang) for it in kept)
        t0 = time.perf_counter()
        dd = load_run_deduper(run, settings)
        wall = time.perf_counter() - t0
        # The restored index catches a near-duplicate of an old item as the live one did.
        probe = next(it for it in items if it.kind == "near_dup")
        return {
            "examples": len(kept), "seconds": wall, "rebuild_items_per_s": len(kept) / wall,
            "restored": len(dd) == len(kept), "old_near_duplicate_caught": dd.check(probe.text).is_dup,
        }


def bench_datasketch(items: list[Item], settings: DedupSettings, verdicts: list) -> dict:
    ds = settings.model_copy(update={"index": "datasketch"})
    _dd, theirs, timing = run_stream(items, ds)
    same = sum(a.is_dup == b.is_dup and a.dup_of == b.dup_of for a, b in zip(verdicts, theirs))
    return {"items": len(items), "items_per_s": timing["items_per_s"], "same_decisions": same / len(items)}


def planted_similarity(items: list[Item], settings: DedupSettings) -> dict:
    """Exact Jaccard of each planted near-duplicate and each template sibling with its source:
    where they sit relative to the threshold, per language (percentiles)."""
    first: dict[int, Item] = {}
    for it in items:
        first.setdefault(it.family, it)
    out: dict[str, dict] = {}
    for kind in ("near_dup", "sibling"):
        for lang in ("en", "ko"):
            pairs = [(first[it.source].text, it.text) for it in items if it.kind == kind and it.lang == lang]
            if not pairs:
                continue
            a = shingle_sets([x for x, _ in pairs], settings.shingle_size)
            b = shingle_sets([y for _, y in pairs], settings.shingle_size)
            sims = np.array([len(np.intersect1d(x, y, assume_unique=True)) / len(np.union1d(x, y)) for x, y in zip(a, b)])
            out[f"{kind}_{lang}"] = {
                "pairs": len(pairs),
                **{f"p{q}": float(np.percentile(sims, q)) for q in (1, 5, 50, 95, 99)},
                "share_at_or_above_threshold": float((sims >= settings.threshold).mean()),
            }
    return out


def family_subset(items: list[Item], n: int, rng: random.Random) -> list[Item]:
    """About `n` items of the stream, whole families at a time (a text with its near-duplicates,
    a sibling with the text it shares a template with), in stream order."""
    members: dict[int, list[int]] = {}
    for k, it in enumerate(items):
        members.setdefault(it.family, []).append(k)
    families = list(members)
    rng.shuffle(families)
    chosen: set[int] = set()
    for fam in families:
        if len(chosen) >= n:
            break
        chosen.update(members[fam])
        source = items[members[fam][0]].source
        if source >= 0:
            chosen.update(members[source])
    return [items[k] for k in sorted(chosen)]


def bench_rouge(items: list[Item], settings: DedupSettings) -> dict:
    """Alpaca's rule against ours on the English part of `items`: time and decisions."""
    english = [it for it in items if it.lang == "en"]
    alpaca, _, rouge_s = alpaca_all_pairs([it.text for it in english])
    _, ours, timing = run_stream(english, settings)
    ours_dup = [v.is_dup for v in ours]
    truth = expected_duplicates(english)
    planted_near = [e and it.kind == "near_dup" for it, e in zip(english, truth)]
    return {
        "subset_items": len(items), "english_items": len(english),
        "rouge_seconds": rouge_s, "dedup_seconds": timing["wall_s"],
        "rouge_subset_speedup": rouge_s / timing["wall_s"],
        "rouge_agreement": sum(a == o for a, o in zip(alpaca, ours_dup)) / len(english),
        "alpaca_drops": sum(alpaca), "ours_drops": sum(ours_dup),
        "both_drop": sum(a and o for a, o in zip(alpaca, ours_dup)),
        "only_alpaca_drops": sum(a and not o for a, o in zip(alpaca, ours_dup)),
        "only_ours_drops": sum(o and not a for a, o in zip(alpaca, ours_dup)),
        "planted_near_dups": sum(planted_near),
        "planted_near_dups_alpaca_drops": sum(a for a, p in zip(alpaca, planted_near) if p),
        "planted_near_dups_ours_drops": sum(o for o, p in zip(ours_dup, planted_near) if p),
    }


def calibrate(settings: DedupSettings, n: int, seed: int, grid: list[float]) -> dict:
    """Graded English pairs, from rewordings to template siblings to unrelated texts: for each
    threshold, how much of what Alpaca's rule calls a duplicate we catch, and how often we agree."""
    pairs = calibration_pairs(n, "en", seed=seed)
    left = shingle_sets([a for a, _, _ in pairs], settings.shingle_size)
    right = shingle_sets([b for _, b, _ in pairs], settings.shingle_size)
    jac = np.array([len(np.intersect1d(x, y, assume_unique=True)) / len(np.union1d(x, y)) for x, y in zip(left, right)])
    alpaca = np.array([rouge_l_f(LcsTable(rouge_tokens(a)), rouge_tokens(b)) > ALPACA_ROUGE for a, b, _ in pairs])
    rows = []
    for t in grid:
        ours = jac >= t
        rows.append({
            "threshold": t,
            "alpaca_recall": float((ours & alpaca).sum() / max(alpaca.sum(), 1)),
            "alpaca_precision": float((ours & alpaca).sum() / max(ours.sum(), 1)),
            "agreement": float((ours == alpaca).mean()),
        })
    kinds: dict[str, list[int]] = {}
    for k, (_, _, how) in enumerate(pairs):
        kinds.setdefault(how.split("=")[0] + ("=" + how.split("=")[1] if "=" in how else ""), []).append(k)
    at_default = {
        how: {"pairs": len(ks), "alpaca_drops": float(alpaca[ks].mean()), "ours_drops": float((jac[ks] >= settings.threshold).mean())}
        for how, ks in sorted(kinds.items())
    }
    return {"pairs": n, "alpaca_duplicate_share": float(alpaca.mean()), "sweep": rows, "by_kind_at_default": at_default}


def sweep_stream(items: list[Item], settings: DedupSettings, grid: list[float]) -> list[dict]:
    out = []
    for t in grid:
        verdicts = Deduper(settings.model_copy(update={"threshold": t})).check_and_add_many([(it.id, it.text) for it in items])
        q = score(items, verdicts)
        out.append({"threshold": t, "recall": q["recall"], "precision": q["precision"], "by_lang": q["by_lang"]})
    return out


def recommend(calibration: list[dict], stream: list[dict]) -> float | None:
    """The threshold that agrees best with Alpaca's rule among those whose recall and precision
    on the planted pairs both reach their targets."""
    ok = {s["threshold"] for s in stream if s["recall"] >= TARGETS["recall"] and s["precision"] >= TARGETS["precision"]}
    eligible = [c for c in calibration if c["threshold"] in ok]
    return max(eligible, key=lambda c: c["agreement"])["threshold"] if eligible else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000, help="items in the stream")
    ap.add_argument("--subset", type=int, default=5_000, help="items in the ROUGE-L comparison")
    ap.add_argument("--datasketch-items", type=int, default=20_000, help="prefix run through MinHashLSH")
    ap.add_argument("--calibration-pairs", type=int, default=10_000, help="graded English pairs")
    ap.add_argument("--grid", type=float, nargs="+", default=[0.45, 0.5, 0.55, 0.6, 0.65],
                    help="thresholds of the sweep")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of the stream (the median is reported)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threshold", type=float, default=None, help="override the default threshold")
    ap.add_argument("--templates", type=int, default=20_000, help="items of the template stream (exact reference: quadratic)")
    ap.add_argument("--templates-datasketch", type=int, default=5_000, help="of those, run through MinHashLSH")
    ap.add_argument("--memory-items", type=int, default=0, help="only the memory run: this many template texts")
    ap.add_argument("--out", type=Path, default=None, help="result file (default bench/results/dedup.json, "
                    "or dedup_1m.json with --memory-items)")
    args = ap.parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)
    if args.memory_items:
        out = args.out or ROOT / "bench" / "results" / "dedup_1m.json"
        memory = bench_memory(template_stream(args.memory_items, seed=args.seed), args.memory_items, DedupSettings())
        write_result(out, {"memory": memory, "target_rss_per_kept_bytes": TEMPLATE_TARGETS["rss_per_kept_bytes"],
                           "settings": DedupSettings().model_dump()})
        print(f"memory: {memory['items']:,} items, {memory['kept']:,} kept in {memory['seconds_with_text_generation']:.0f}s "
              f"(text generation included); {memory['rss_added_per_kept_bytes']:.0f} bytes resident per kept text -> {out}")
        return 0
    args.out = args.out or ROOT / "bench" / "results" / "dedup.json"
    templates = bench_thresholds(list(template_stream(args.templates, seed=args.seed)), args.templates_datasketch,
                                 DedupSettings().shingle_size, log)

    settings = DedupSettings() if args.threshold is None else DedupSettings(threshold=args.threshold)
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    items = make_stream(args.n, seed=args.seed)
    corpus_s = time.perf_counter() - t0
    log(f"corpus: {len(items)} items in {corpus_s:.0f}s")

    dd, verdicts, timing = run_stream(items, settings, args.repeat)
    quality = score(items, verdicts)
    log(f"stream: {timing['items_per_s']:.0f} items/s, recall {quality['recall']:.4f}, precision {quality['precision']:.4f}")
    rebuild = bench_rebuild(items, verdicts, settings)
    ds = bench_datasketch(items[: args.datasketch_items], settings, verdicts[: args.datasketch_items])
    log(f"datasketch index: {ds['items_per_s']:.0f} items/s")
    rouge = bench_rouge(family_subset(items, args.subset, rng), settings)
    log(f"rouge subset: {rouge['rouge_subset_speedup']:.0f}x")
    check = check_rouge([it.text for it in items if it.lang == "en"][:5000], rng)
    calibration = calibrate(settings, args.calibration_pairs, args.seed, args.grid)
    stream_sweep = sweep_stream(items, settings, args.grid)
    similarity = planted_similarity(items, settings)
    recommended = recommend(calibration["sweep"], stream_sweep)

    result = {
        "template_stream": templates,
        "template_targets": TEMPLATE_TARGETS,
        "items_per_s": timing["items_per_s"],
        "recall": quality["recall"],
        "precision": quality["precision"],
        "rouge_subset_speedup": rouge["rouge_subset_speedup"],
        "rouge_agreement": rouge["rouge_agreement"],
        "targets": TARGETS,
        "settings": {**settings.model_dump(), "lsh_bands_rows": list(dd.lsh_params)},
        "recommended_threshold": recommended,
        "machine": {
            "cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "datasketch": datasketch.__version__,
        },
        "corpus": {
            "items": len(items), "seed": args.seed, "generation_s": corpus_s,
            "by_kind": dict(Counter(it.kind for it in items)), "by_lang": dict(Counter(it.lang for it in items)),
        },
        "stream": timing,
        "quality": quality,
        "rebuild": rebuild,
        "datasketch_index": ds,
        "rouge": rouge,
        "rouge_check": check,
        "calibration": calibration,
        "stream_sweep": stream_sweep,
        "planted_similarity": similarity,
    }
    write_result(args.out, result)

    print(f"template stream: {templates['items']:,} items, exact greedy reference; one core")
    print("  threshold  recall  precision  items/s  datasketch items/s  speedup  wrong drops")
    for r in templates["thresholds"]:
        print(f"  {r['threshold']:9.2f}  {r['recall']:.4f}  {r['precision']:9.4f}  {r['items_per_s']:7,.0f}  "
              f"{r['datasketch']['items_per_s']:18,.0f}  {r['speedup_vs_datasketch']:6.1f}x  {r['drops_below_threshold']}")
    ok = lambda name, v: "ok" if v >= TARGETS[name] else "BELOW TARGET"
    rows = [
        ("items_per_s (wall, 2 threads)", f"{timing['items_per_s']:,.0f}", ok("items_per_s", timing["items_per_s"])
         + f"  (median of {len(timing['runs'])}: " + ", ".join(f"{r['items_per_s']:,.0f}" for r in timing["runs"])
         + f"; load avg {timing['load_average_1min_before']:.1f})"),
        ("recall (planted)", f"{quality['recall']:.4f}", ok("recall", quality["recall"])),
        ("precision (planted)", f"{quality['precision']:.4f}", ok("precision", quality["precision"])),
        ("rebuild_items_per_s", f"{rebuild['rebuild_items_per_s']:,.0f}", "index rebuilt from examples.jsonl"),
        ("datasketch MinHashLSH items/s", f"{ds['items_per_s']:,.0f}", f"same decisions: {ds['same_decisions']:.4f}"),
        ("rouge_subset_speedup", f"{rouge['rouge_subset_speedup']:.0f}x",
         f"{rouge['english_items']} English items, ROUGE-L all pairs {rouge['rouge_seconds']:.1f}s"),
        ("rouge_agreement", f"{rouge['rouge_agreement']:.4f}",
         f"only Alpaca drops {rouge['only_alpaca_drops']}, only ours {rouge['only_ours_drops']}"),
    ]
    print(f"dedup benchmark: {len(items):,} items, threshold {settings.threshold}, {settings.shingle_size}-char "
          f"shingles over jamo, LSH {dd.lsh_params[0]}x{dd.lsh_params[1]} -> {args.out}")
    for name, value, note in rows:
        print(f"  {name:32s} {value:>10s}  {note}")
    print("  threshold  alpaca recall  agreement  planted recall  planted precision")
    for c, st in zip(calibration["sweep"], stream_sweep):
        mark = "  <- default" if c["threshold"] == settings.threshold else ""
        print(f"  {c['threshold']:9.2f}  {c['alpaca_recall']:13.3f}  {c['agreement']:9.3f}  "
              f"{st['recall']:14.4f}  {st['precision']:17.4f}{mark}")
    print(f"  recommended threshold (best agreement with precision and recall on target): {recommended}")
    for name, d in similarity.items():
        print(f"  {name:12s} exact Jaccard with its source: p1 {d['p1']:.2f}  p50 {d['p50']:.2f}  p99 {d['p99']:.2f}"
              f"  (>= threshold: {d['share_at_or_above_threshold']:.1%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
