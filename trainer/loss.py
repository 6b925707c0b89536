"""The training loss: summed cross-entropy over supervised positions, with the LM head applied in chunks.

Gemma's vocabulary has 256,000 entries: full logits for an 8k-token row are 8192 x 256000 x 4 bytes = 8 GiB
in fp32, and autograd would keep them for backward. Instead:

    hidden   = decoder(packed row)                 [1, T, H]   (final norm included)
    h        = hidden[0, supervised positions]     [N, H]      (positions known on the host, no sync)
    for each chunk of `chunk_tokens` rows of h:
        logits = lm_head(h_chunk) -> fp32 -> softcap  [chunk, V]
        loss  += cross_entropy(logits, targets, sum)

Each chunk runs under activation checkpointing: its logits are freed after the forward and recomputed one
chunk at a time in backward, so at most one chunk of logits (and its gradient) is alive at any moment.
The head is the model's own output-embedding module (`get_output_embeddings()`), so tied weights, biases
or a LoRA-wrapped head behave as in the model's forward (Gemma scales by sqrt(hidden) only on the input side).

The SUM and the count are returned: the loop divides by the supervised tokens of the whole optimizer step,
so every token weighs the same however the examples fall into micro-batches.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from trainer.attention import base_model, active_backend, packed_attention_kwargs
from trainer.packing import PackedBatch

DEFAULT_CHUNK_TOKENS = 1024


def _decoder(base: Any) -> torch.nn.Module:
    get_decoder = getattr(base, "get_decoder", None)
    decoder = get_decoder() if callable(get_decoder) else None
    if decoder is None or decoder is base:
        decoder = getattr(base, getattr(base, "base_model_prefix", "model"), None)
    if decoder is None:
        raise TypeError(f"cannot find the decoder inside {type(base).__name__}; expected a causal LM")
    return decoder


def packed_hidden_states(model: torch.nn.Module, batch: PackedBatch) -> torch.Tensor:
    """Final hidden states [1, T, H] of a packed batch, each example attending only to itself."""
    base = base_model(model)
    backend = active_backend(base)
    out = _decoder(base)(
        input_ids=batch.input_ids,
        position_ids=batch.position_ids,
        use_cache=False,
        **packed_attention_kwargs(batch, backend),
    )
    return out[0]


def _chunk_loss(
    hidden: torch.Tensor, targets: torch.Tensor, head: torch.nn.Module, softcap: float | None
) -> torch.Tensor:
    logits = head(hidden).float()  # fp32 for the softmax: bf16 log-probabilities are too coarse
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits, targets, reduction="sum")


def chunked_cross_entropy_sum(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    head: torch.nn.Module,
    *,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    softcap: float | None = None,
) -> torch.Tensor:
    """Sum of cross-entropy of `head(hidden)` [N, V] against `targets` [N], `chunk_tokens` rows at a time."""
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be a positive number of rows, got {chunk_tokens}")
    n = hidden.shape[0]
    if n == 0:
        return hidden.sum().float() * 0.0  # keeps the graph connected, so backward() still works
    recompute = torch.is_grad_enabled() and hidden.requires_grad
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, n, chunk_tokens):
        h, y = hidden[start : start + chunk_tokens], targets[start : start + chunk_tokens]
        if recompute:
            total = total + checkpoint(_chunk_loss, h, y, head, softcap, use_reentrant=False)
        else:
            total = total + _chunk_loss(h, y, head, softcap)
    return total


def supervised_loss_sum(
    model: torch.nn.Module, batch: PackedBatch, chunk_tokens: int = DEFAULT_CHUNK_TOKENS
) -> tuple[torch.Tensor, int]:
    """(sum of cross-entropy over the batch's supervised tokens [fp32 scalar], their count).

    `batch` must already be on the model's device; `model` must have had use_packed_attention called.
    """
    base = base_model(model)
    hidden = packed_hidden_states(model, batch)  # [1, T, H]
    supervised = hidden[0].index_select(0, batch.supervised_index)  # [N, H]
    softcap = getattr(base.config, "final_logit_softcapping", None)
    loss_sum = chunked_cross_entropy_sum(
        supervised,
        batch.supervised_targets,
        base.get_output_embeddings(),
        chunk_tokens=chunk_tokens,
        softcap=float(softcap) if softcap else None,
    )
    return loss_sum, batch.num_supervised
