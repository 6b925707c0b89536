"""The variants of our loop that bench/train_gpu.py measures: the option table, how a spec such as
`6144:compile:pad=6144:chunk=1024` reads, the settings each records, and the default lists."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from bench.train_gpu_setup import Setup
from trainer.model import ALL_PROJECTIONS


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
    lora_dropout: float = 0.0
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
        elif key == "dropout" and _is_fraction(value):
            v.lora_dropout = float(value)
        else:
            known = ", ".join([*FLAGS, *(f"{k}=N" for k in NUMBERS), "attn=NAME", "dropout=P"])
            raise argparse.ArgumentTypeError(f"variant {spec!r}: unknown option {opt!r} ({known})")
    return v


def _is_fraction(value: str) -> bool:
    try:
        return 0.0 <= float(value) < 1.0
    except ValueError:
        return False


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
        "lora": {"r": 4, "alpha": 32, "dropout": v.lora_dropout, "target_modules": list(ALL_PROJECTIONS)},
        "adapter_dtype": "float32" if v.lora_fp32 else str(setup.dtype).removeprefix("torch."),
        "lr": setup.lr,
        "lr_scheduler": "cosine",
        "optim": "AdamW (fused on CUDA)",
    }


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
    # The tutorial's own LoRA settings (dropout 0.05, fp32 adapters) in our loop: isolates the loop's gain.
    "6144:compile:pad=6144:chunk=1024:lora32:dropout=0.05",
])
TINY_VARIANTS = "256,512:ckpt"
