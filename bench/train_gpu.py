"""Trainer benchmark: the tutorial's HF Trainer + peft setup against our loop, in one call.

Model: gemma-2b's shapes (vocab 256000, hidden 2048, 18 layers, 8 heads, 1 KV head, head_dim 256,
MLP 16384, tied head; GemmaConfig) with random weights, so nothing is downloaded. Data: synthetic
examples with log-normal lengths (median 300 tokens, sigma 0.6, clipped to 32..1024), the first quarter
of each masked as the prompt. Both sides train on the same pool of examples.

(a) baseline, the tutorial: HF Trainer + peft, LoRA r=4 alpha=32 dropout 0.05 on all seven projections,
    lr 1e-4 cosine, adamw_torch_fused, per-device batch 4, grad-accum 2, bf16, examples padded to the
    longest in the batch, sdpa attention.
(b) ours, one or more variants: packed micro-batches of a token budget (best-fit-decreasing), packed
    attention that never crosses examples, chunked loss on supervised tokens only, LoRA dropout 0 and
    bf16 adapters, fused AdamW, cosine; optionally torch.compile per decoder layer and gradient
    checkpointing. The functions are the loop's own (trainer.loop.train_step & co.).

Each run takes --warmup-steps optimizer steps (compilation, allocator warm-up) and then times
--steps steps. tokens/s counts real (non-padding) tokens. MFU = tokens/s * 4N / peak, N = weights in
matrix products including the tied LM head (about 2.5e9 here); the peak is the card's dense bf16 spec
(H100 SXM: 989.4e12 FLOP/s), named in the results. A variant that fails (out of memory, a compile error)
is recorded and the others still run; --time-budget-s stops exploring before time runs out. The
results file is rewritten after every run, so even a killed benchmark leaves what it measured.

    python bench/train_gpu.py                                   # baseline + default variants
    python bench/train_gpu.py --variants 8192:compile,16384:ckpt:compile --time-budget-s 420
    python bench/train_gpu.py --tiny                            # tiny shapes: a smoke test, CPU is fine

A variant is TOKEN_BUDGET[:option...]; options: compile, ckpt (gradient checkpointing), accum=N
(micro-batches per step, default 1), chunk=N (loss chunk rows), pad=N (pad rows to a multiple of N),
attn=BACKEND (trainer.attention), lora32 (fp32 adapters), peftlora (peft's own LoRA forward, also
without compile), addmm (the in-place addmm LoRA forward, also with compile), eagerloss (compile the layers but not the loss's softmax), prof (after the timed steps, profile PROFILE_STEPS more: time per step by
kind of GPU kernel, the busiest kernels, and the share of the wall time the GPU sat idle). Results: bench/results/train_gpu.json
(--tiny: train_gpu_tiny.json), copied to $OUT when that variable is set. Needs only torch,
transformers, peft and accelerate (no pydantic, no flash-attn).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STARTED = dt.datetime.now(dt.timezone.utc)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import torch  # noqa: E402

from bench.provenance import provenance  # noqa: E402
from trainer.model import ALL_PROJECTIONS  # noqa: E402

GEMMA_2B = {
    "vocab_size": 256000,
    "hidden_size": 2048,
    "intermediate_size": 16384,
    "num_hidden_layers": 18,
    "num_attention_heads": 8,
    "num_key_value_heads": 1,
    "head_dim": 256,
}
TINY = {
    "vocab_size": 512,
    "hidden_size": 64,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "head_dim": 16,
}


@dataclass
class Lengths:
    """Log-normal example lengths: median, sigma of log-length, clipped to [low, high]."""

    median: int = 300
    sigma: float = 0.6
    low: int = 32
    high: int = 1024
    prompt_fraction: float = 0.25


@dataclass
class Setup:
    """Everything both sides share."""

    shape: dict[str, int]
    lengths: Lengths
    examples: int
    steps: int
    warmup_steps: int
    device: torch.device
    dtype: torch.dtype
    seed: int = 0
    lr: float = 1e-4
    baseline_batch: int = 4
    baseline_accum: int = 2


@dataclass
class Sample:
    """One synthetic example. trainer.packing.collate reads just these two fields (trainer.data's
    TokenizedExample has them too, but importing trainer.data pulls in pydantic, absent on GPU boxes)."""

    input_ids: list[int]
    labels: list[int]


def synthetic_examples(setup: Setup) -> list[Sample]:
    rng = random.Random(setup.seed)
    gen = torch.Generator().manual_seed(setup.seed)
    spec = setup.lengths
    out = []
    for _ in range(setup.examples):
        n = min(spec.high, max(spec.low, round(rng.lognormvariate(math.log(spec.median), spec.sigma))))
        # ids >= 3 leave pad/eos/bos alone
        ids = torch.randint(3, setup.shape["vocab_size"], (n,), generator=gen).tolist()
        k = int(n * spec.prompt_fraction)
        out.append(Sample(input_ids=ids, labels=[-100] * k + ids[k:]))
    return out


# --------------------------------------------------------------------------------------------------
# Variants of ours


@dataclass
class Variant:
    token_budget: int
    compile: bool = False
    checkpointing: bool = False
    grad_accum: int = 1
    chunk_tokens: int = 1024
    pad_to_multiple: int = 1
    attention: str = "auto"
    lora_fp32: bool = False
    fused_lora: bool = True
    profile: bool = False
    eager_loss: bool = False
    addmm_lora: bool = False
    name: str = ""


# Variant flags: name -> (Variant field, value it sets).
FLAGS = {
    "compile": ("compile", True),
    "ckpt": ("checkpointing", True),
    "lora32": ("lora_fp32", True),
    "peftlora": ("fused_lora", False),
    "addmm": ("addmm_lora", True),
    "eagerloss": ("eager_loss", True),
    "prof": ("profile", True),
}
NUMBERS = {"accum": "grad_accum", "chunk": "chunk_tokens", "pad": "pad_to_multiple"}


def parse_variant(spec: str) -> Variant:
    parts = [p.strip() for p in spec.split(":") if p.strip()]
    if not parts or not parts[0].isdigit():
        raise argparse.ArgumentTypeError(f"variant {spec!r}: start with a token budget, e.g. 8192:compile")
    v = Variant(token_budget=int(parts[0]), name=spec)
    for opt in parts[1:]:
        key, _, value = opt.partition("=")
        if key in FLAGS and not value:
            setattr(v, *FLAGS[key])
        elif key in NUMBERS and value.isdigit() and int(value) > 0:
            setattr(v, NUMBERS[key], int(value))
        elif key == "attn" and value:
            v.attention = value
        else:
            known = ", ".join([*FLAGS, *(f"{k}=N" for k in NUMBERS), "attn=NAME"])
            raise argparse.ArgumentTypeError(f"variant {spec!r}: unknown option {opt!r} ({known})")
    return v


# --------------------------------------------------------------------------------------------------
# Shared helpers


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory(device: torch.device) -> None:
    gc.collect()
    torch._dynamo.reset()  # compiled graphs hold on to their inputs' shapes and guards
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peaks(device: torch.device) -> tuple[float | None, float | None]:
    """(peak allocated GiB, peak reserved GiB) on CUDA; None on CPU (RSS is per process, not per run)."""
    if device.type != "cuda":
        return None, None
    return torch.cuda.max_memory_allocated(device) / 2**30, torch.cuda.max_memory_reserved(device) / 2**30


def allocated_gib(device: torch.device) -> float | None:
    """Memory still held when a run starts (should be ~0: else an earlier run leaked into this one's peak)."""
    return torch.cuda.memory_allocated(device) / 2**30 if device.type == "cuda" else None


def build_base(setup: Setup, attn: str) -> torch.nn.Module:
    """A Gemma causal LM with random weights, created directly on the device."""
    from transformers import AutoModelForCausalLM, GemmaConfig

    config = GemmaConfig(
        **setup.shape,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        attention_dropout=0.0,
    )
    torch.manual_seed(setup.seed)
    try:
        with torch.device(setup.device):  # initialise on the GPU: seconds instead of minutes on the CPU
            model = AutoModelForCausalLM.from_config(config, dtype=setup.dtype, attn_implementation=attn)
    except (RuntimeError, TypeError, ValueError):
        model = AutoModelForCausalLM.from_config(config, dtype=setup.dtype, attn_implementation=attn)
    return model.to(setup.device)


def error_text(e: BaseException) -> str:
    last = traceback.format_exception_only(type(e), e)[-1].strip()
    return last[:800]


# --------------------------------------------------------------------------------------------------
# (a) the tutorial: HF Trainer + peft


def baseline_settings(setup: Setup) -> dict[str, Any]:
    cuda = setup.device.type == "cuda"
    return {
        "trainer": "transformers.Trainer + peft",
        "lora": {"r": 4, "alpha": 32, "dropout": 0.05, "target_modules": list(ALL_PROJECTIONS)},
        "lr": setup.lr,
        "lr_scheduler": "cosine",
        "optim": "adamw_torch_fused" if cuda else "adamw_torch",
        "per_device_batch": setup.baseline_batch,
        "grad_accum": setup.baseline_accum,
        "precision": "bf16 weights + bf16 autocast, fp32 adapters (peft default)" if cuda else "fp32",
        "padding": "to the longest in the batch",
        "attention": "sdpa",
    }


def run_baseline(setup: Setup, examples: list[Sample]) -> dict[str, Any]:
    from peft import LoraConfig, get_peft_model
    from torch.utils.data import SequentialSampler
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from trainer.metrics import flops_per_token, matmul_params, peak_flops

    cuda = setup.device.type == "cuda"
    per_step = setup.baseline_batch * setup.baseline_accum
    total = setup.warmup_steps + setup.steps
    if total * per_step > len(examples):
        raise ValueError(
            f"the baseline needs {total * per_step} examples, the pool has {len(examples)}: raise --examples"
        )
    rows = [{"input_ids": ex.input_ids, "labels": ex.labels} for ex in examples[: total * per_step]]

    def pad_to_longest(batch: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            labels[i, :n] = torch.tensor(r["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    class StepTimes(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            sync(setup.device)
            self.times.append(time.perf_counter())

    class InOrderTrainer(Trainer):
        # The examples in file order, so we know which (and how many real tokens) each step trained on.
        def _get_train_sampler(self, *args: Any, **kwargs: Any) -> SequentialSampler:
            return SequentialSampler(self.train_dataset)

    at_start = allocated_gib(setup.device)
    model = build_base(setup, attn="sdpa")
    n_matmul = matmul_params(model)
    model = get_peft_model(
        model,
        LoraConfig(r=4, lora_alpha=32, lora_dropout=0.05, target_modules=list(ALL_PROJECTIONS), task_type="CAUSAL_LM"),
    )
    out_dir = tempfile.mkdtemp(prefix="bench-hf-")
    timer = StepTimes()
    try:
        args = TrainingArguments(
            output_dir=out_dir,
            per_device_train_batch_size=setup.baseline_batch,
            gradient_accumulation_steps=setup.baseline_accum,
            learning_rate=setup.lr,
            lr_scheduler_type="cosine",
            optim="adamw_torch_fused" if cuda else "adamw_torch",
            bf16=cuda,
            max_steps=total,
            logging_steps=total,  # log once at the end: no extra host sync per step
            save_strategy="no",
            report_to="none",
            dataloader_num_workers=0,
            remove_unused_columns=False,
            disable_tqdm=True,
            use_cpu=not cuda,
            seed=setup.seed,
        )
        trainer = InOrderTrainer(
            model=model, args=args, train_dataset=rows, data_collator=pad_to_longest, callbacks=[timer]
        )
        trainer.train()
        train_loss = next((h["train_loss"] for h in trainer.state.log_history if "train_loss" in h), None)
        del trainer
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    lengths = [len(r["input_ids"]) for r in rows]
    tokens = sum(lengths[setup.warmup_steps * per_step :])
    seconds = timer.times[-1] - timer.times[setup.warmup_steps - 1] if setup.warmup_steps else None
    if seconds is None:
        raise ValueError("the baseline needs at least one warm-up step to start its clock")
    padded = 0
    for s in range(setup.warmup_steps, total):
        for b in range(setup.baseline_accum):
            start = s * per_step + b * setup.baseline_batch
            batch = lengths[start : start + setup.baseline_batch]
            padded += max(batch) * len(batch)
    peak, reserved = peaks(setup.device)
    peak_flops_s = peak_flops(setup.device, setup.dtype)
    return {
        "tokens_per_s": tokens / seconds,
        "mfu": tokens / seconds * flops_per_token(n_matmul) / peak_flops_s if peak_flops_s else None,
        "peak_gib": peak,
        "peak_reserved_gib": reserved,
        "measured_tokens": tokens,
        "padding_fraction": 1 - tokens / padded,
        "allocated_at_start_gib": at_start,
        "measured_s": seconds,
        "train_loss_mean": train_loss,
    }


# --------------------------------------------------------------------------------------------------
# (b) ours


@dataclass
class LoraSpec:
    """What trainer.model.add_lora reads (trainer.settings.LoraSettings without pydantic)."""

    r: int = 4
    alpha: float = 32.0
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(ALL_PROJECTIONS))


def run_ours(setup: Setup, examples: list[Sample], variant: Variant) -> dict[str, Any]:
    from trainer.attention import use_packed_attention
    from trainer.loop import apply_speed_options, build_optimizer, build_scheduler, plan_steps, train_step
    from trainer.loss import compile_loss
    from trainer.metrics import flops_per_token, matmul_params, peak_flops
    from trainer.model import add_lora, fuse_lora_adds
    from trainer.packing import collate

    timed_end = setup.warmup_steps + setup.steps
    total = timed_end + (PROFILE_STEPS if variant.profile else 0)
    lengths = [len(ex.input_ids) for ex in examples]
    # Enough epochs over the pool for `total` steps (a small pool is simply reused).
    epochs = 1 + math.ceil(total * variant.token_budget * variant.grad_accum / sum(lengths))
    plan, _ = plan_steps(
        lengths, token_budget=variant.token_budget, grad_accum=variant.grad_accum, world_size=1, epochs=epochs,
        seed=setup.seed,
    )
    at_start = allocated_gib(setup.device)
    model = build_base(setup, attn="sdpa")
    backend = use_packed_attention(model, variant.attention)
    n_matmul = matmul_params(model)
    torch.manual_seed(setup.seed)
    adapter_dtype = torch.float32 if variant.lora_fp32 else setup.dtype
    model = add_lora(model, LoraSpec(), adapter_dtype=adapter_dtype)
    apply_speed_options(
        model, gradient_checkpointing=variant.checkpointing, compile_layers=variant.compile,
        fused_lora=variant.fused_lora,
    )
    if variant.eager_loss:
        compile_loss(model, on=False)
    if variant.addmm_lora:
        fuse_lora_adds(model)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, lr=setup.lr, device=setup.device)
    scheduler = build_scheduler(optimizer, warmup=0, total=total)

    losses: list[float] = []
    unread: list[tuple[torch.Tensor, int]] = []  # launched steps' (loss sum, supervised tokens), not yet read

    def read_losses(keep: int = 0) -> None:
        while len(unread) > keep:
            loss_sum, n = unread.pop(0)
            losses.append(loss_sum.item() / n)

    def step(i: int) -> int:
        """Launch optimizer step i, then read the step before it, as the loop does; returns real tokens."""
        batches = [
            collate([examples[j] for j in mb], pad_to_multiple=variant.pad_to_multiple).to(setup.device)
            for mb in plan[i].micro_batches
        ]
        n_supervised = max(1, sum(b.num_supervised for b in batches))
        loss_sum, _ = train_step(
            model, batches, n_supervised=n_supervised, params=params, optimizer=optimizer, scheduler=scheduler,
            max_grad_norm=1.0, chunk_tokens=variant.chunk_tokens,
        )
        unread.append((loss_sum, n_supervised))
        read_losses(keep=1)
        return sum(lengths[j] for mb in plan[i].micro_batches for j in mb)

    for i in range(setup.warmup_steps):
        step(i)
    read_losses()
    sync(setup.device)
    t0 = time.perf_counter()
    tokens = sum(step(i) for i in range(setup.warmup_steps, timed_end))
    read_losses()
    sync(setup.device)
    seconds = time.perf_counter() - t0
    peak, reserved = peaks(setup.device)
    tokens_per_s = tokens / seconds
    peak_flops_s = peak_flops(setup.device, setup.dtype)
    profile = (
        profile_steps(lambda: [step(i) for i in range(timed_end, total)] + [read_losses()], setup.device)
        if variant.profile else None
    )
    return {
        **({"profile": profile} if profile else {}),
        "tokens_per_s": tokens_per_s,
        "peak_gib": peak,
        "peak_reserved_gib": reserved,
        "mfu": tokens_per_s * flops_per_token(n_matmul) / peak_flops_s if peak_flops_s else None,
        "measured_tokens": tokens,
        "measured_s": seconds,
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "attention_backend": backend,
        "matmul_params": n_matmul,
        "allocated_at_start_gib": at_start,
    }


def preflight_attention(setup: Setup) -> tuple[dict[str, Any], str | None]:
    """Before the long runs: does packed attention run (forward and backward) on this device, and does it
    keep packed examples apart? A tiny model on the real device and dtype; three examples packed in one
    row must give the loss they give one by one. Returns (report, first backend that passed)."""
    from dataclasses import replace

    from trainer.attention import use_packed_attention
    from trainer.loss import supervised_loss_sum
    from trainer.packing import collate

    tiny = replace(setup, shape=TINY)
    gen = torch.Generator().manual_seed(1)
    examples = []
    for n in (37, 64, 20):
        ids = torch.randint(3, TINY["vocab_size"], (n,), generator=gen).tolist()
        examples.append(Sample(input_ids=ids, labels=[-100] * (n // 4) + ids[n // 4 :]))
    tolerance = 5e-2 if setup.dtype == torch.bfloat16 else 1e-4
    report: dict[str, Any] = {}
    for backend in ("auto", "flex", "sdpa_mask"):
        try:
            model = build_base(tiny, attn="sdpa")
            used = use_packed_attention(model, backend)
            model.get_input_embeddings().weight.requires_grad_(True)  # something to backpropagate into
            packed, _ = supervised_loss_sum(model, collate(examples).to(setup.device), 1024)
            packed.backward()
            with torch.no_grad():
                apart = sum(supervised_loss_sum(model, collate([e]).to(setup.device), 1024)[0] for e in examples)
            rel = abs(packed.item() - float(apart)) / abs(float(apart))
            report[backend] = {"backend": used, "packed_vs_apart_rel_diff": rel, "ok": rel < tolerance}
        except Exception as e:  # noqa: BLE001
            report[backend] = {"error": error_text(e), "ok": False}
        finally:
            model = None
            free_memory(setup.device)
        if report[backend]["ok"]:
            return report, report[backend]["backend"]
    return report, None


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


def variant_settings(v: Variant, setup: Setup) -> dict[str, Any]:
    return {
        "token_budget": v.token_budget,
        "grad_accum": v.grad_accum,
        "compile_per_layer": v.compile,
        "compiled_loss": v.compile and not v.eager_loss,
        "lora_forward": "addmm" if v.addmm_lora or (v.fused_lora and not v.compile) else "peft",
        "gradient_checkpointing": v.checkpointing,
        "loss_chunk_tokens": v.chunk_tokens,
        "pad_to_multiple": v.pad_to_multiple,
        "attention": v.attention,
        "lora": {"r": 4, "alpha": 32, "dropout": 0.0, "target_modules": list(ALL_PROJECTIONS)},
        "adapter_dtype": "float32" if v.lora_fp32 else str(setup.dtype).removeprefix("torch."),
        "lr": setup.lr,
        "lr_scheduler": "cosine",
        "optim": "AdamW (fused on CUDA)",
    }


# --------------------------------------------------------------------------------------------------
# The comparison


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


def compare(setup: Setup, variants: list[Variant], *, out_path: Path, run_baseline_too: bool = True,
            time_budget_s: float = 1e9, memory_limit_gib: float = 24.0, benchmark: str = "train_gpu") -> dict[str, Any]:
    """Run the baseline and every variant (within the time budget), writing results after each run."""
    started = time.monotonic()
    examples = synthetic_examples(setup)
    real = [len(e.input_ids) for e in examples]
    peak_spec = None
    if setup.device.type == "cuda":
        from trainer.metrics import peak_flops

        peak_spec = peak_flops(setup.device, setup.dtype)
    results: dict[str, Any] = {
        "benchmark": benchmark,
        "results_file": str(out_path),
        "environment": environment(setup),
        "device": None,
        "model_shape": {**setup.shape, "tie_word_embeddings": True, "weights": "random (GemmaConfig)"},
        "data": {**asdict(setup.lengths), "examples": len(examples), "mean_tokens": sum(real) / len(real)},
        "warmup_steps": setup.warmup_steps,
        "measured_steps": setup.steps,
        "dtype": str(setup.dtype).removeprefix("torch."),
        "mfu_assumption": (
            f"4N FLOPs per trained token, N = weights in matrix products incl. the tied LM head; peak "
            f"{peak_spec:.4g} FLOP/s, the card's dense bf16 spec (H100 SXM: 989.4e12)" if peak_spec else
            "no MFU: the device's peak FLOP/s is unknown (CPU, fp32 or an unlisted card)"
        ),
        "memory_limit_gib": memory_limit_gib,
        "memory_limit_basis": "peak reserved by PyTorch's allocator (what the card must hold)",
        "baseline_settings": baseline_settings(setup),
        "baseline": None,
        "variants": [],
    }
    results["device"] = results["environment"]["device"]
    results["torch"] = results["environment"]["torch"]
    results["transformers"] = results["environment"]["transformers"]
    durations: dict[bool, float] = {}

    report, working = preflight_attention(setup)
    results["attention_preflight"] = report
    print(f"packed attention preflight: {report}", flush=True)
    if working is not None and not report["auto"]["ok"]:
        for v in variants:  # auto's pick failed here: use the backend that passed
            if v.attention == "auto":
                v.attention = working
    write_results(results, out_path)

    if run_baseline_too:
        t = time.monotonic()
        print("baseline: HF Trainer + peft ...", flush=True)
        try:
            results["baseline"] = {"settings": baseline_settings(setup), **run_baseline(setup, examples)}
        except Exception as e:  # noqa: BLE001  (recorded; the variants still run)
            results["baseline"] = {"error": error_text(e)}
        results["baseline"]["seconds"] = time.monotonic() - t
        free_memory(setup.device)
        print(f"  {results['baseline']}", flush=True)
        summarise(results, memory_limit_gib)
        write_results(results, out_path)

    for variant in variants:
        entry: dict[str, Any] = {"name": variant.name, "settings": variant_settings(variant, setup)}
        # A guess at this run's length: the longest earlier run of the same kind (compiled runs take longer).
        estimate = durations.get(variant.compile, 90.0 if variant.compile and setup.device.type == "cuda" else 20.0)
        left = time_budget_s - (time.monotonic() - started)
        if estimate > left:
            entry["skipped"] = f"time budget: {left:.0f}s left, a run like this takes about {estimate:.0f}s"
            results["variants"].append(entry)
            print(f"ours {variant.name}: skipped ({entry['skipped']})", flush=True)
            continue
        t = time.monotonic()
        print(f"ours {variant.name} ...", flush=True)
        try:
            entry.update(run_ours(setup, examples, variant))
        except Exception as e:  # noqa: BLE001  (an OOM or a compile error is a result, not the end)
            entry["error"] = error_text(e)
        entry["seconds"] = time.monotonic() - t
        durations[variant.compile] = max(durations.get(variant.compile, 0.0), entry["seconds"])
        free_memory(setup.device)
        results["variants"].append(entry)
        print(f"  {entry}", flush=True)
        summarise(results, memory_limit_gib)
        write_results(results, out_path)

    summarise(results, memory_limit_gib)
    results["total_seconds"] = time.monotonic() - started
    write_results(results, out_path)
    print_table(results)
    return results


def build_arg_parser(default_out: str = "bench/results/train_gpu.json") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="tiny shapes and data (CPU smoke test)")
    p.add_argument("--variants", help="comma-separated variants of ours (see above)")
    p.add_argument("--steps", type=int, help="timed optimizer steps per run (default 10; tiny 3)")
    p.add_argument("--warmup-steps", type=int, help="untimed steps first (default 3; tiny 1)")
    p.add_argument("--examples", type=int, help="synthetic examples in the pool (default 3000; tiny 200)")
    p.add_argument("--no-baseline", action="store_true", help="only ours")
    p.add_argument("--time-budget-s", type=float, default=480.0, help="stop starting runs when this is spent")
    p.add_argument("--memory-limit-gib", type=float, default=24.0, help="the best variant must fit this")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--out", type=Path, help=f"results file (default {default_out}; tiny: *_tiny.json)")
    p.add_argument("--seed", type=int, default=0)
    return p


# Most promising first: the time budget cuts the list from the end. Without checkpointing, gemma-2b keeps
# roughly 2.5 MB of activations per token (the 16384-wide MLP dominates), so 6144 tokens fit 24 GiB and
# 8192 is borderline; checkpointing fits far more but recomputes each layer (about a third more compute).
# After the trainer's settings (6144 tokens, compiled, loss chunks of 1024): the ablations of this round
# (the addmm LoRA forward under compile, the loss softmax not compiled, larger loss chunks, other budgets,
# no compile), then the first variant again under the profiler (which also shows the run-to-run spread).
DEFAULT_VARIANTS = ",".join([
    "6144:compile:pad=6144:chunk=1024",
    "6144:compile:pad=6144:chunk=2048",
    "6144:compile:pad=6144:chunk=1024:addmm",
    "6144:compile:pad=6144:chunk=1024:eagerloss",
    "8192:compile:pad=8192:chunk=1024",
    "4096:compile:pad=4096:chunk=1024",
    "4096:pad=4096",
    "6144:compile:pad=6144:chunk=1024:prof",
])
TINY_VARIANTS = "256,512:ckpt"


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA GPU is visible", file=sys.stderr)
        return 2
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if cuda else "cpu")
    tiny = args.tiny
    setup = Setup(
        shape=TINY if tiny else GEMMA_2B,
        lengths=Lengths(median=40, low=8, high=128) if tiny else Lengths(),
        examples=args.examples or (200 if tiny else 3000),
        steps=args.steps or (3 if tiny else 10),
        warmup_steps=args.warmup_steps if args.warmup_steps is not None else (1 if tiny else 3),
        device=device,
        dtype=torch.bfloat16 if cuda else torch.float32,
        seed=args.seed,
    )
    if setup.warmup_steps < 1 or setup.steps < 1:
        print("error: --steps and --warmup-steps must be at least 1", file=sys.stderr)
        return 2
    try:
        specs = args.variants or (TINY_VARIANTS if tiny else DEFAULT_VARIANTS)
        variants = [parse_variant(s) for s in specs.split(",")]
    except argparse.ArgumentTypeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.out or ROOT / ("bench/results/train_gpu_tiny.json" if tiny else "bench/results/train_gpu.json")
    compare(
        setup, variants, out_path=out, run_baseline_too=not args.no_baseline,
        time_budget_s=args.time_budget_s, memory_limit_gib=args.memory_limit_gib,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
