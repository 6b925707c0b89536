"""The pipeline against a real model on a real server: bench/results/local_model.json.

    python bench/local_model.py                    # about 30 minutes on 2 cores
    python bench/local_model.py --seconds 60 --windows 3

llama.cpp's OpenAI-compatible server (factory/local_server.py, the `local` extra) serves
SmolLM2-135M-Instruct on this machine. Measured, all in one run:

- generation: each recipe (self-instruct, topics) and language (en, ko), with constrained decoding
  (`--structured auto`: the probe finds json_object with the schema) and without (`--structured no`,
  replies parsed as text); `python -m factory generate` as a user runs it, stopped (Ctrl-C, which
  drains) after --seconds. Per run: replies, candidates, kept, yield per request, rejections by
  reason, the parse rate (replies that parsed, those cut at max_tokens counted apart), output
  tokens/s of the server, and the engine's own CPU time as a share of the wall time;
- concurrency: a fixed workload at fixed concurrency 1, 2, 4, 8 (a sweep), then the engine's own
  (following the server's queue), --windows windows each: output tokens/s per window, the median,
  and the adaptive median over the sweep's best;
- the judge: single 1-10 scores of a few answers with the schema (auto) and without (text): the
  share of verdicts that could not be read.

A 135M model makes poor data: the point is that every real failure mode is caught and counted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402

from bench.provenance import write_result  # noqa: E402
from factory.engine import ChatRequest, Engine, EngineSettings, Ledger  # noqa: E402
from factory.local_server import local_server  # noqa: E402
from schemas import Answer, Question, RunFolder, read_jsonl, write_jsonl  # noqa: E402

SEEDS = {("self-instruct", "en"): "examples/seed_tasks_en.jsonl", ("self-instruct", "ko"): "examples/seed_tasks_ko.jsonl",
         ("topics", "ko"): "examples/keywords_ko.txt"}
EN_KEYWORDS = ["first home purchase", "mortgage rates", "renting a flat", "property tax", "moving house",
               "home insurance", "tenant rights", "house viewing"]
# Settings that fit a 4096-token context: fewer tasks per request than the default 8 (whose
# max_tokens alone would be 3,200), and the Korean seeds' long prompts shown two at a time.
SMALL = {"self-instruct": ["--tasks-per-request", "3", "--seed-examples", "2", "--instruct-max-tokens", "600"],
         "topics": ["--keywords-per-request", "1", "--questions-per-keyword", "3", "--answers-per-request", "2",
                    "--answers-max-tokens", "600"]}


def ledger_rows(run: Path) -> list[dict[str, Any]]:
    path = RunFolder(run).ledger
    if not path.exists():
        return []
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT stage, status, finish_reason, output_tokens, latency_s "
                                            "FROM requests ORDER BY rowid")]
    finally:
        db.close()


def generate(server: Any, recipe: str, lang: str, structured: str, seconds: float, folder: Path) -> dict[str, Any]:
    run = folder / f"{recipe}-{lang}-{structured}"
    seeds = SEEDS.get((recipe, lang))
    if seeds is None:  # English topics: keywords of the tutorial's domain
        (folder / "keywords_en.txt").write_text("\n".join(EN_KEYWORDS) + "\n")
        seeds = str(folder / "keywords_en.txt")
    command = [sys.executable, "-m", "factory", "generate", "--run", str(run), "--recipe", recipe, "--seeds",
               str(ROOT / seeds), "--lang", lang, "--n", "1000", "--base-url", server.base_url, "--model",
               server.model, "--price-input", "0", "--price-output", "0", "--no-progress", "--structured",
               structured, *SMALL[recipe]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = child.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGINT)  # as a user stops it: in-flight requests drain and are recorded
        out, err = child.communicate()
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rows = [r for r in ledger_rows(run) if r["stage"] != "probe"]
    folder_ = RunFolder(run)
    rejected = [json.loads(x) for x in folder_.rejected.read_text().splitlines()] if folder_.rejected.exists() else []
    kept = len(folder_.examples.read_text().splitlines()) if folder_.examples.exists() else 0
    reasons = Counter(r["reason"] if not r.get("stage") else f"{r['stage']}: {r['reason']}" for r in rejected)
    done = [r for r in rows if r["status"] == "done"]
    cut = [r for r in done if r["finish_reason"] == "length"]
    unparsed = sum(n for reason, n in reasons.items() if reason.endswith("parse"))
    whole = len(done) - len(cut)
    tokens = sum(r["output_tokens"] for r in rows)
    probe = {r["status"] for r in ledger_rows(run) if r["stage"] == "probe"}
    structured_form = (folder_.config_section("structured").get(server.base_url) or {}).get("format")
    return {
        "recipe": recipe, "lang": lang, "structured": structured, "form": structured_form or "text",
        "probe_requests": sum(1 for r in ledger_rows(run) if r["stage"] == "probe"), "probe_statuses": sorted(probe),
        "seconds": round(wall, 1), "exit": child.returncode,
        "requests": len(rows), "failed": sum(r["status"] == "failed" for r in rows),
        "replies_cut_at_max_tokens": len(cut),
        "parse_rate": None if whole <= 0 else round(max(0.0, 1 - unparsed / whole), 3),
        "candidates": kept + len(rejected), "kept": kept, "yield_per_request": round(kept / len(rows), 3) if rows else None,
        "rejections": dict(reasons.most_common()),
        "output_tokens_per_s": round(tokens / wall, 2) if wall else None,
        "engine_cpu_share": round(cpu / wall, 3) if wall else None,
        "engine_cpu_note": "CPU of the generate process (engine, recipe, filters, dedup) over the wall time",
        "stderr_tail": err.strip().splitlines()[-1:] if err.strip() else [],
    }


async def window(base_url: str, model: str, concurrency: int | None, requests: int, seed: int) -> dict[str, Any]:
    """`requests` short answers at a fixed concurrency (None: the engine's own), output tokens/s."""
    fixed = concurrency is not None
    settings = EngineSettings(base_url=base_url, model=model, progress=False, max_concurrency=concurrency or 256,
                              timeout_s=600, rpm=10**7 if fixed else None)  # a limit: the queue control stays off
    todo = [ChatRequest("sweep", model, [{"role": "user", "content": f"Write two sentences about topic {seed}-{i}."}],
                        {"max_tokens": 48, "temperature": 0.7, "seed": seed * 1000 + i}) for i in range(requests)]
    results: list[Any] = []
    with Ledger(":memory:") as ledger:
        engine = Engine(settings, ledger, api_key="local")
        started = time.monotonic()
        await engine.run(todo, results.append, total=requests)
        wall = time.monotonic() - started
    tokens = sum(r.call.usage.output_tokens for r in results if r.ok)
    latencies = [r.call.latency_s or 0.0 for r in results if r.ok]
    return {"concurrency": concurrency or "adaptive", "requests": requests, "failed": sum(not r.ok for r in results),
            "seconds": round(wall, 2), "output_tokens_per_s": round(tokens / wall, 2),
            "max_latency_s": round(max(latencies), 2), "reached": engine.concurrency.highest,
            "settled": engine.concurrency.limit}


def sweep(server: Any, windows: int, requests: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for w in range(windows):  # interleaved, so load on the machine falls on every setting alike
        for c in (1, 2, 4, 8, None):
            rows.append(anyio.run(window, server.base_url, server.model, c, requests, w))
            print(f"  window {w}: concurrency {rows[-1]['concurrency']}: {rows[-1]['output_tokens_per_s']} tok/s",
                  flush=True)
    medians = {str(c): statistics.median(r["output_tokens_per_s"] for r in rows if r["concurrency"] == (c or "adaptive"))
               for c in (1, 2, 4, 8, None)}
    fixed = {k: v for k, v in medians.items() if k != "None"}
    best = max(fixed, key=fixed.__getitem__)
    return {"windows": rows, "median_output_tokens_per_s": {("adaptive" if k == "None" else k): v for k, v in medians.items()},
            "best_fixed": int(best), "adaptive_over_best": round(medians["None"] / fixed[best], 3)}


def judge(server: Any, structured: str, folder: Path, count: int) -> dict[str, Any]:
    run = folder / f"judge-{structured}"
    questions = [q.model_copy(update={"turns": q.turns[:1]}) for q in read_jsonl(ROOT / "evalsets" / "en.jsonl", Question)[:count]]
    write_jsonl(folder / "q.jsonl", questions)
    write_jsonl(RunFolder(run).answers, [Answer(question_id=q.question_id, model="lora",
                                                turns=[f"An answer to: {q.turns[0][:100]}"]) for q in questions])
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "judge", "grade", "--run", str(run), "--mode", "single",
                           "--judge-model", server.model, "--questions", str(folder / "q.jsonl"), "--base-url",
                           server.base_url, "--price-input", "0", "--price-output", "0", "--no-progress",
                           "--structured", structured, "--judge-max-tokens", "200", "--retries", "1"],
                          cwd=ROOT, capture_output=True, text=True)
    judgments = [json.loads(x) for x in RunFolder(run).judgments.read_text().splitlines()] if RunFolder(run).judgments.exists() else []
    unscored = sum(j["status"] == "unscored" for j in judgments)
    return {"structured": structured, "questions": count, "graded": len(judgments), "unscored": unscored,
            "unscored_share": round(unscored / len(judgments), 3) if judgments else None,
            "seconds": round(time.monotonic() - started, 1), "exit": done.returncode}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=150.0, help="wall time of each generate run (then Ctrl-C)")
    p.add_argument("--windows", type=int, default=3, help="windows per concurrency in the sweep")
    p.add_argument("--requests", type=int, default=10, help="requests per sweep window")
    p.add_argument("--judge-questions", type=int, default=8)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "local_model.json")
    args = p.parse_args()
    started_at = __import__("datetime").datetime.now(__import__("datetime").timezone.utc)
    folder = Path(tempfile.mkdtemp(prefix="local-model-"))
    try:
        t0 = time.monotonic()
        with local_server("smollm2", log=folder / "server.log") as server:
            ready = time.monotonic() - t0
            print(f"server ready in {ready:.1f} s at {server.base_url}", flush=True)
            runs = []
            for recipe in ("self-instruct", "topics"):
                for lang in ("en", "ko"):
                    for structured in ("auto", "no"):
                        runs.append(generate(server, recipe, lang, structured, args.seconds, folder))
                        r = runs[-1]
                        print(f"  {recipe} {lang} {structured} ({r['form']}): {r['requests']} requests, kept {r['kept']}, "
                              f"parse rate {r['parse_rate']}, {r['rejections']}", flush=True)
            concurrency = sweep(server, args.windows, args.requests)
            judging = [judge(server, s, folder, args.judge_questions) for s in ("auto", "no")]
        figures = {
            "server": {"software": "llama-cpp-python[server] 0.3.36 (llama.cpp)", "model": "SmolLM2-135M-Instruct Q4_1 GGUF",
                       "n_ctx": 4096, "slots": 1, "ready_s": round(ready, 1), "threads": os.cpu_count()},
            "generate_seconds_each": args.seconds, "generation": runs, "concurrency": concurrency, "judge": judging,
        }
        written = write_result(args.out, figures, started_at)
        print(json.dumps({k: written[k] for k in ("concurrency",)}, indent=1)[:1500])
        print(f"wrote {args.out}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
