"""bench/train_gpu.py --tiny runs end to end on CPU, and needs nothing the GPU machine lacks (pydantic)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # bench/ is not an installed package

# Runs the script as __main__ and then reports which of our pydantic-bound modules got imported.
RUNNER = """
import runpy, sys
sys.argv = ["bench/train_gpu.py", *sys.argv[1:]]
try:
    runpy.run_path("bench/train_gpu.py", run_name="__main__")
except SystemExit as e:
    assert not e.code, e.code
# (schemas.errors, the root of the trainer's error tree, needs only the standard library)
needless = ("pydantic", "tomli_w", "schemas.records", "schemas.run", "trainer.settings", "trainer.data")
print("IMPORTED", sorted(m for m in needless if m in sys.modules))
"""


def test_tiny_benchmark_runs_on_cpu_and_writes_the_results(tmp_path: Path) -> None:
    out = tmp_path / "train_gpu_tiny.json"
    copies = tmp_path / "device-out"  # where the device tool collects files ($OUT)
    copies.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, "--tiny", "--device", "cpu", "--steps", "1", "--examples", "60",
         "--variants", "256:ckpt:accum=2,64,256:addmm:prof", "--out", str(out)],
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
    assert names == ["256:ckpt:accum=2", "64", "256:addmm:prof"]
    good = r["variants"][0]
    assert good["loss_first"] > 0 and good["settings"]["lora"]["dropout"] == 0.0
    assert good["settings"]["gradient_checkpointing"] and good["settings"]["grad_accum"] == 2
    # A failing variant (a budget below the longest example) is recorded, not fatal.
    assert "more than the token budget" in r["variants"][1]["error"]
    profiled = r["variants"][2]
    assert profiled["settings"]["lora_forward"] == "addmm" and profiled["tokens_per_s"] > 0
    assert profiled["profile"]["wall_ms_per_step"] > 0 and profiled["profile"]["top_cpu_ops_ms_per_step"]
    assert r["best_variant"] in ("256:ckpt:accum=2", "256:addmm:prof")
    assert (copies / "train_gpu_tiny.json").read_text() == out.read_text()
    assert "HF Trainer + peft (tutorial)" in proc.stdout and "speedup" in proc.stdout


def test_profile_sorts_kernels_by_kind() -> None:
    """Kernel names as the H100 profile printed them."""
    from bench.train_gpu_profile import kernel_kind

    kinds = {
        "nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_NNT": "matmul",
        "void cutlass::Kernel2<cutlass_80_tensorop_bf16_s16816gemm_bf16_128x256_32x3_tn_align2>(x)": "matmul",
        "triton_poi_fused_add_gelu_gelu_backward_mul_view_1": "triton (compiled pointwise/reductions)",
        "void pytorch_flash::flash_bwd_dq_dk_dv_loop_seqk_parallel_kernel<Flash_bwd_kernel_traits<256>>": "attention",
        "Memcpy DtoD (Device -> Device)": "memcpy/memset",
        "void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>": "eager elementwise",
    }
    assert {name: kernel_kind(name) for name in kinds} == kinds


def test_a_variant_can_keep_the_tutorials_lora_dropout_and_records_it() -> None:
    import argparse

    import pytest
    import torch

    from bench.train_gpu_setup import Lengths, Setup
    from bench.train_gpu_variants import parse_variant, variant_settings

    v = parse_variant("6144:compile:lora32:dropout=0.05")
    setup = Setup(shape={}, lengths=Lengths(), examples=1, steps=1, warmup_steps=1,
                  device=torch.device("cpu"), dtype=torch.bfloat16)
    settings = variant_settings(v, setup)
    assert settings["lora"]["dropout"] == 0.05 and settings["adapter_dtype"] == "float32"
    assert variant_settings(parse_variant("6144"), setup)["lora"]["dropout"] == 0.0
    for wrong in ("6144:dropout=1.5", "6144:dropout=x"):
        with pytest.raises(argparse.ArgumentTypeError, match="dropout=P"):
            parse_variant(wrong)
