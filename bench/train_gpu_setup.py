"""What both sides of bench/train_gpu.py share: the model's shapes (gemma-2b's, or tiny ones), the
synthetic examples, and the device helpers (synchronise, free and measure memory, build the model).
Needs only torch and transformers (no pydantic: GPU machines may lack it)."""

from __future__ import annotations

import gc
import math
import random
import traceback
from dataclasses import dataclass

import torch


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
