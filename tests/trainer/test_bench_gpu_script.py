"""bench/train_gpu.py --tiny runs end to end on CPU, and needs nothing the GPU machine lacks (pydantic)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Runs the script as __main__ and then reports which of our pydantic-bound modules got imported.
RUNNER = """
import runpy, sys
sys.argv = ["bench/train_gpu.py", *sys.argv[1:]]
try:
    runpy.run_path("bench/train_gpu.py", run_name="__main__")
except SystemExit as e:
    assert not e.code, e.code
needless = ("pydantic", "schemas", "trainer.settings", "trainer.data", "tomli_w")
print("IMPORTED", sorted(m for m in needless if m in sys.modules))
"""


def test_tiny_benchmark_runs_on_cpu_and_writes_the_results(tmp_path: Path) -> None:
    out = tmp_path / "train_gpu_tiny.json"
    copies = tmp_path / "device-out"  # where the device tool collects files ($OUT)
    copies.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, "--tiny", "--device", "cpu", "--steps", "1", "--examples", "60",
         "--variants", "256:ckpt:accum=2,64", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, env={**os.environ, "OUT": str(copies)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "IMPORTED []" in proc.stdout  # runs where only torch, transformers, peft and accelerate exist
    r = json.loads(out.read_text())
    for key in ("tokens_per_s", "baseline_tokens_per_s", "speedup", "peak_gib", "baseline_peak_gib", "mfu", "device",
                "mfu_assumption", "baseline_settings", "environment", "attention_preflight"):
        assert key in r
    assert r["baseline"]["tokens_per_s"] > 0 and r["tokens_per_s"] > 0
    assert r["speedup"] == r["tokens_per_s"] / r["baseline_tokens_per_s"]
    assert r["attention_preflight"]["auto"]["ok"]
    names = [v["name"] for v in r["variants"]]
    assert names == ["256:ckpt:accum=2", "64"]
    good = r["variants"][0]
    assert good["loss_first"] > 0 and good["settings"]["lora"]["dropout"] == 0.0
    assert good["settings"]["gradient_checkpointing"] and good["settings"]["grad_accum"] == 2
    # A failing variant (a budget below the longest example) is recorded, not fatal.
    assert "more than the token budget" in r["variants"][1]["error"]
    assert r["best_variant"] == "256:ckpt:accum=2"
    assert (copies / "train_gpu_tiny.json").read_text() == out.read_text()
    assert "HF Trainer + peft (tutorial)" in proc.stdout and "speedup" in proc.stdout
