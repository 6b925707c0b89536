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
attn=BACKEND (trainer.attention), lora32 (fp32 adapters), dropout=P (LoRA dropout; the tutorial's is 0.05),
peftlora (peft's own LoRA forward, also without compile), addmm (the in-place addmm LoRA forward, also with compile), eagerloss (compile the layers but not the loss's softmax), prof (after the timed steps, profile PROFILE_STEPS more: time per step by
kind of GPU kernel, the busiest kernels, and the share of the wall time the GPU sat idle). Results: bench/results/train_gpu.json
(--tiny: train_gpu_tiny.json), copied to $OUT when that variable is set. Needs only torch,
transformers, peft and accelerate (no pydantic, no flash-attn).

This file is the measurement; beside it: train_gpu_variants.py (the option table and the default
lists), train_gpu_setup.py (shapes, synthetic data, device helpers), train_gpu_profile.py (the
`prof` option) and train_gpu_results.py (the results file and the table).
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import torch  # noqa: E402

from bench.train_gpu_profile import PROFILE_STEPS, profile_steps  # noqa: E402
from bench.train_gpu_results import environment, print_table, summarise, write_results  # noqa: E402
from bench.train_gpu_setup import (  # noqa: E402
    GEMMA_2B,
    TINY,
    Lengths,
    Sample,
    Setup,
    allocated_gib,
    build_base,
    error_text,
    free_memory,
    peaks,
    sync,
    synthetic_examples,
)
from bench.train_gpu_variants import (  # noqa: E402
    DEFAULT_VARIANTS,
    TINY_VARIANTS,
    Variant,
    parse_variant,
    variant_settings,
)
from trainer.model import ALL_PROJECTIONS  # noqa: E402


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
    from trainer.loop import build_optimizer, build_scheduler, train_step
    from trainer.model import apply_speed_options
    from trainer.packing import plan_steps
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
    model = add_lora(model, LoraSpec(dropout=variant.lora_dropout), adapter_dtype=adapter_dtype)
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


# --------------------------------------------------------------------------------------------------
# The comparison


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
