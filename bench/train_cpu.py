"""Trainer benchmark on CPU: the same comparison as bench/train_gpu.py, with a tiny model, as a ratio.

HF Trainer + peft in the tutorial's setup (batch 4 x grad-accum 2, padded to the longest, LoRA dropout
0.05) against our loop (packed micro-batches of a token budget, chunked loss) on the same synthetic
examples: log-normal lengths with median 300 tokens clipped to 32..1024, the first quarter masked as the
prompt, fp32. The model is trainer.tiny's shape (hidden 64, 2 layers, 4 heads, 1 KV head) with a
1024-token vocabulary, random weights.

On a CPU and a model this small the numbers say little about a GPU: what carries over is the work
saved by not computing on padding and on prompt logits, not kernel speed. The figure to read is the
ratio `speedup`; absolute tokens/s depend on the machine and on whatever else runs on it.

    python bench/train_cpu.py                      # writes bench/results/train_cpu.json
    python bench/train_cpu.py --variants 1024,2048 --steps 8 --threads 2

On CPU the packed row's attention uses a block-diagonal [T, T] mask, so its cost grows with the square of
the token budget (on a GPU the varlen kernels skip the masked blocks): small budgets win here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_gpu import ROOT, compare  # noqa: E402  (puts the checkout on sys.path)

from bench.train_gpu_setup import Lengths, Setup  # noqa: E402
from bench.train_gpu_variants import parse_variant  # noqa: E402
from trainer.tiny import DEFAULT_SHAPE  # noqa: E402

SHAPE = {
    "vocab_size": 1024,
    **{k: DEFAULT_SHAPE[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                    "num_key_value_heads", "head_dim")},
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", default="1024,2048,2048:dropout=0.05",
                   help="token budgets (and options) of ours, as in train_gpu.py; the last one keeps the "
                        "tutorial's LoRA dropout (on a CPU the adapters are fp32 in every row)")
    p.add_argument("--steps", type=int, default=6, help="timed optimizer steps per run")
    p.add_argument("--warmup-steps", type=int, default=2)
    p.add_argument("--examples", type=int, default=600)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier on a shared machine)")
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/train_cpu.json")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    if args.steps < 1 or args.warmup_steps < 1:
        print("error: --steps and --warmup-steps must be at least 1", file=sys.stderr)
        return 2
    try:
        variants = [parse_variant(s) for s in args.variants.split(",")]
    except argparse.ArgumentTypeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    setup = Setup(
        shape=SHAPE,
        lengths=Lengths(),
        examples=args.examples,
        steps=args.steps,
        warmup_steps=args.warmup_steps,
        device=torch.device("cpu"),
        dtype=torch.float32,
    )
    results = compare(setup, variants, out_path=args.out, benchmark="train_cpu")
    speedup = results.get("speedup")
    print(f"speedup over HF Trainer + peft on CPU: {speedup:.2f}x" if speedup else "no speedup measured")
    return 0


if __name__ == "__main__":
    sys.exit(main())
