"""What bench/train_gpu.py records and prints: the machine, the headline figures (the fastest variant
that fits the memory limit, against the baseline), the results file (rewritten after every run,
with its provenance, and copied to $OUT when set) and the table."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
from pathlib import Path
from typing import Any

import torch

from bench.provenance import provenance
from bench.train_gpu_setup import Setup

STARTED = dt.datetime.now(dt.timezone.utc)


def environment(setup: Setup) -> dict[str, Any]:
    import importlib.util

    import peft
    import transformers

    cuda = setup.device.type == "cuda"
    device = torch.cuda.get_device_name(setup.device) if cuda else (platform.processor() or "cpu")
    return {
        "device": device,
        "device_type": setup.device.type,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "python": platform.python_version(),
        "flash_attn_installed": importlib.util.find_spec("flash_attn") is not None,
        "cpu_threads": torch.get_num_threads(),
    }


def summarise(results: dict[str, Any], memory_limit_gib: float) -> None:
    """Pick the fastest variant that fits the memory limit and fill in the headline fields."""
    done = [v for v in results["variants"] if v.get("tokens_per_s")]
    for v in done:
        reserved = v.get("peak_reserved_gib")
        v["fits_memory_limit"] = None if reserved is None else reserved <= memory_limit_gib
    fitting = [v for v in done if v["fits_memory_limit"] is not False]
    best = max(fitting or done, key=lambda v: v["tokens_per_s"], default=None)
    base = results.get("baseline") or {}
    results["best_variant"] = best["name"] if best else None
    results["tokens_per_s"] = best["tokens_per_s"] if best else None
    results["peak_gib"] = best["peak_gib"] if best else None
    results["mfu"] = best["mfu"] if best else None
    results["baseline_tokens_per_s"] = base.get("tokens_per_s")
    results["baseline_peak_gib"] = base.get("peak_gib")
    results["speedup"] = (
        best["tokens_per_s"] / base["tokens_per_s"] if best and base.get("tokens_per_s") else None
    )


def write_results(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    results = {"provenance": provenance(STARTED), **{k: v for k, v in results.items() if k != "provenance"}}
    tmp.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    out = os.environ.get("OUT")
    if out and (Path(out) / path.name).resolve() != path.resolve():
        shutil.copy(path, Path(out) / path.name)


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def print_table(results: dict[str, Any]) -> None:
    base = results.get("baseline") or {}
    rows = [("HF Trainer + peft (tutorial)", base)] + [(f"ours {v['name']}", v) for v in results["variants"]]
    print(f"\n{'setup':<40} {'tokens/s':>10} {'peak GiB':>9} {'reserved':>9} {'MFU':>6} {'speedup':>8}  note")
    for label, r in rows:
        speed = r.get("tokens_per_s")
        ratio = speed / base["tokens_per_s"] if speed and base.get("tokens_per_s") else None
        note = r.get("error") or r.get("skipped") or ("best" if label == f"ours {results.get('best_variant')}" else "")
        print(
            f"{label[:40]:<40} {fmt(speed, ',.0f'):>10} {fmt(r.get('peak_gib'), '.1f'):>9} "
            f"{fmt(r.get('peak_reserved_gib'), '.1f'):>9} {fmt(r.get('mfu') and 100 * r['mfu'], '.1f'):>6} "
            f"{fmt(ratio, '.2f'):>8}  {note[:90]}"
        )
    for v in results["variants"]:
        prof = v.get("profile")
        if prof and "ms_per_step_by_kind" in prof:
            print(f"\nprofile of ours {v['name']}: {prof['wall_ms_per_step']:.1f} ms a step, GPU busy "
                  f"{prof['gpu_busy_ms_per_step']:.1f} ms (idle {100 * prof['gpu_idle_share']:.1f}%), "
                  f"{prof['kernels_per_step']:.0f} kernels")
            for kind, ms in prof["ms_per_step_by_kind"].items():
                print(f"  {kind:<42} {ms:8.2f} ms")
            for k in prof["busiest_kernels"][:12]:
                print(f"  {k['ms_per_step']:8.2f} ms {k['calls_per_step']:5.0f}x  {k['name'][:100]}")
    print(f"device: {results['environment']['device']} | results: {results['results_file']}", flush=True)
