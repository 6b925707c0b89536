"""Profiling a few optimizer steps of bench/train_gpu.py (the `prof` option of a variant): on a GPU,
time per step by kind of kernel, the busiest kernels, and the share of the wall time the GPU sat
idle; on a CPU, the busiest operators."""

from __future__ import annotations

import time
from typing import Any

import torch

from bench.train_gpu_setup import sync


PROFILE_STEPS = 2


def kernel_kind(name: str) -> str:
    """A GPU kernel's kind, from its name (cuBLAS, Triton from torch.compile, flash attention, ...)."""
    n = name.lower()
    if any(k in n for k in ("gemm", "nvjet", "cutlass", "xmma", "cublas", "splitk")):
        return "matmul"
    if "flash" in n or "fmha" in n or "attention" in n:
        return "attention"
    if n.startswith("triton"):
        return "triton (compiled pointwise/reductions)"
    if "memcpy" in n or "memset" in n:
        return "memcpy/memset"
    if "reduce" in n or "softmax" in n or "logsumexp" in n:
        return "eager reductions"
    if "elementwise" in n or "vectorized" in n or "copy" in n or "fill" in n:
        return "eager elementwise"
    return "other"


def profile_steps(run: Any, device: torch.device, top: int = 25) -> dict[str, Any]:
    """Profile `run` (PROFILE_STEPS optimizer steps): per step, GPU time by kernel kind, the busiest kernels,
    and the wall time the GPU was idle. On CPU: the busiest operators instead."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sync(device)
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        run()
        sync(device)
        wall_ms = (time.perf_counter() - t0) * 1e3
    per_step = wall_ms / PROFILE_STEPS
    if not cuda:
        ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
        return {"steps": PROFILE_STEPS, "wall_ms_per_step": per_step,
                "top_cpu_ops_ms_per_step": {e.key: e.self_cpu_time_total / 1e3 / PROFILE_STEPS for e in ops}}
    kernels: dict[str, list[float]] = {}
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            entry = kernels.setdefault(e.name, [0.0, 0])
            entry[0] += e.time_range.elapsed_us() / 1e3 / PROFILE_STEPS
            entry[1] += 1
    kinds: dict[str, float] = {}
    for name, (ms, _) in kernels.items():
        kinds[kernel_kind(name)] = kinds.get(kernel_kind(name), 0.0) + ms
    busy = sum(kinds.values())
    busiest = sorted(kernels.items(), key=lambda kv: kv[1][0], reverse=True)[:top]
    return {
        "steps": PROFILE_STEPS,
        "wall_ms_per_step": per_step,
        "gpu_busy_ms_per_step": busy,  # kernels can overlap on streams; on one stream this is the busy time
        "gpu_idle_share": max(0.0, 1.0 - busy / per_step),
        "ms_per_step_by_kind": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "kernels_per_step": sum(c for _, c in kernels.values()) / PROFILE_STEPS,
        "busiest_kernels": [
            {"name": name[:160], "ms_per_step": ms, "calls_per_step": n / PROFILE_STEPS} for name, (ms, n) in busiest
        ],
    }
