"""The checks behind bench/train_vs_trl.py's comparison, and its CPU profile summary.

- trl_isolation_check: TRL's padding-free packed row keeps its examples apart on this machine (sdpa).
- loss_parity: on one packed row at the base weights, TRL's training loss and ours are the same number.
- heldout_loss: the loss after training, computed the same way for both adapters.
- profile_summary: a torch.profiler run's CPU time per optimizer step, by kind of operator.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import torch


def _trl_model(model_dir: str) -> Any:
    """The model as SFTTrainer runs it: sdpa (transformers' default on a CPU) and TRL's fused LM head."""
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    add_fused_lm_head(model)
    return model


def _trl_row(examples: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
    """TRL's padding-free collator over `examples` packed into one row (as its BFD packing leaves them)."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    ids = [e["input_ids"] for e in examples]
    labels = [e.get("labels", e["input_ids"]) for e in examples]
    return DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(
        [{"input_ids": list(chain(*ids)), "labels": list(chain(*labels)), "seq_lengths": [len(i) for i in ids]}])


def trl_isolation_check(model_dir: str, examples: list[dict[str, list[int]]]) -> dict[str, Any]:
    """The log-probs of every token in TRL's packed row must be those the examples get one at a time (TRL's
    fused loss forward, as SFTTrainer.compute_loss calls it). The same row with an all-ones attention mask,
    where nothing separates the examples, shows the check can fail."""
    model = _trl_model(model_dir)
    ids = [e["input_ids"] for e in examples]
    row = _trl_row([{"input_ids": i} for i in ids])

    def per_example(log_probs: torch.Tensor) -> list[torch.Tensor]:
        out, offset = [], 0
        for n in map(len, ids):  # log_probs[j] scores token j + 1; the first of each example is not scored
            out.append(log_probs[0, offset : offset + n - 1])
            offset += n
        return out

    with torch.no_grad():
        alone = [model(input_ids=torch.tensor([i]), labels=torch.tensor([i]), fused_lm_head=True,
                       use_cache=False).log_probs[0] for i in ids]
        packed = per_example(model(**row, use_cache=False, fused_lm_head=True).log_probs)
        mixed = per_example(model(**row, attention_mask=torch.ones_like(row["input_ids"]), use_cache=False,
                                  fused_lm_head=True).log_probs)
    gap = max((a - p).abs().max().item() for a, p in zip(alone, packed, strict=True))
    leak = max((a - m).abs().max().item() for a, m in zip(alone, mixed, strict=True))
    return {
        "examples_tokens": [len(i) for i in ids],
        "attn_implementation": model.config._attn_implementation,
        "max_abs_logprob_gap_packed_vs_alone": gap,
        "max_abs_logprob_gap_without_isolation": leak,
        "isolated": gap < 1e-3 < leak,
    }


def loss_parity(model_dir: str, examples: list[Any], chunk_tokens: int = 1024) -> dict[str, Any]:
    """Both trainers' loss of the same packed row at the base weights (LoRA starts as the identity, B = 0):
    ours (trainer.loss over trainer.attention's packed row) and TRL's (its fused loss forward, over its
    padding-free collator's row), each the mean over the row's supervised tokens."""
    from transformers import AutoModelForCausalLM

    from trainer.attention import use_packed_attention
    from trainer.loss import supervised_loss_sum
    from trainer.packing import collate

    ours_model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    backend = use_packed_attention(ours_model, "auto")
    trl_model = _trl_model(model_dir)
    with torch.no_grad():
        loss_sum, n = supervised_loss_sum(ours_model, collate(examples), chunk_tokens=chunk_tokens)
        trl_loss = trl_model(**_trl_row([{"input_ids": e.input_ids, "labels": e.labels} for e in examples]),
                             use_cache=False, fused_lm_head=True).loss.item()
    ours = loss_sum.item() / n
    return {"row_tokens": sum(len(e) for e in examples), "supervised_tokens": n, "ours": ours, "trl": trl_loss,
            "abs_gap": abs(ours - trl_loss), "ours_attention": backend, "same": abs(ours - trl_loss) < 1e-4}


def heldout_loss(model_dir: str, adapter: str | None, held: list[Any]) -> float:
    """Mean loss per supervised token of the held-out examples, one example per forward (no packing, no
    padding: the same plain transformers forward for both trainers' adapters)."""
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for ex in held:
            logits = model(input_ids=torch.tensor([ex.input_ids]), use_cache=False).logits[0, :-1]
            targets = torch.tensor(ex.labels[1:])
            total += F.cross_entropy(logits.float(), targets, ignore_index=-100, reduction="sum").item()
            count += int((targets != -100).sum())
    return total / count


# --------------------------------------------------------------------------------------------------
# Profile


def op_kind(name: str) -> str:
    """An ATen operator's kind, by name: where a CPU training step spends its time."""
    n = name.lower()
    if "attention" in n or "flash" in n or "baddbmm" in n:
        return "attention"
    if n in ("aten::mm", "aten::addmm", "aten::bmm", "aten::addmm_") or "matmul" in n:
        return "matmul"
    if "softmax" in n or "logsumexp" in n or "nll_loss" in n or "cross_entropy" in n:
        return "softmax / loss"
    if "vmap" in n or "index" in n or "gather" in n or "scatter" in n or "masked" in n or "where" in n:
        return "indexing / masks"
    if any(k in n for k in ("copy", "cat", "clone", "contiguous", "to_copy", "empty", "zero", "fill", "stack")):
        return "copies / allocation"
    if n.startswith("aten::"):
        return "elementwise / other aten"
    return "python-level / other"


def profile_summary(prof: Any, steps: int, wall_s: float, top: int = 15) -> dict[str, Any]:
    """Self CPU time per optimizer step by operator kind, and the busiest operators (torch.profiler)."""
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    kinds: dict[str, float] = {}
    for e in events:
        kinds[op_kind(e.key)] = kinds.get(op_kind(e.key), 0.0) + e.self_cpu_time_total / 1e3 / steps
    busiest = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    total = sum(kinds.values())
    return {
        "profiled_steps": steps,
        "wall_ms_per_step": wall_s * 1e3 / steps,
        # Self CPU time of the operators on the threads that called them (intra-op threads work inside them).
        "self_cpu_ms_per_step": total,
        "self_cpu_ms_per_step_by_kind": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "share_by_kind": {k: v / total for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
        "busiest_ops": [{"op": e.key, "ms_per_step": e.self_cpu_time_total / 1e3 / steps,
                         "calls_per_step": e.count / steps} for e in busiest],
    }
