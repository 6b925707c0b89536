"""The training loss: summed cross-entropy over supervised positions, with the LM head applied in chunks.

Gemma's vocabulary has 256,000 entries: full logits for an 8k-token row are 8192 x 256000 x 4 bytes = 8 GiB
in fp32, and autograd would keep them for backward. Instead:

    hidden   = decoder(packed row)                 [1, T, H]   (final norm included)
    h        = hidden[0, supervised positions]     [N, H]      (positions known on the host, no sync)
    for each of ceil(N / chunk_tokens) nearly equal chunks of h:
        logits = lm_head(h_chunk) -> fp32 -> softcap  [chunk, V]
        loss  += cross_entropy(logits, targets, sum)

When the head is a plain frozen linear layer (the LoRA case: Gemma's tied embedding), the gradient with
respect to the hidden states is computed in the same pass as the loss, chunk by chunk
(`_FusedLinearCrossEntropy`): softmax - one-hot, times the head weight. Backward then only scales it, so the
head's 2 x N x H x V matmul is never run a second time and no logits outlive their chunk; with compile on
(`compile_loss`), each chunk's softmax and gradient are compiled kernels (`_loss_and_grad`). Any other head
(trainable, biased, LoRA-wrapped) runs each chunk under activation checkpointing instead: logits freed after
the forward and recomputed one chunk at a time in backward.
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
_COMPILED_MARK = "_trainer_compiled_loss"


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


def chunk_bounds(n: int, chunk: int) -> list[tuple[int, int]]:
    """[start, end) of ceil(n / chunk) chunks of n rows, sizes within one of each other (none over `chunk`).

    Equal chunks rather than full ones and a remainder: a remainder of 1 row would make the compiled
    softmax compile again (torch.compile treats a size of 1 apart), a second of stall in the middle of a step.
    """
    k = -(-n // chunk)
    bounds = [i * n // k for i in range(k + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _loss_and_grad(
    logits: torch.Tensor, targets: torch.Tensor, softcap: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum CE(softcap(logits), targets), d sum / d logits in the logits' dtype) for one chunk [c, V].

    Overwrites `logits` when they are fp32 already (they are a temporary of the caller). Eager, the in-place
    ops keep the fp32 copies of the chunk few. Under torch.compile the function becomes two passes over the
    logits (the rows' log-sum-exp, then the softmax written in the logits' dtype) and a scatter of c values
    instead of about ten eager passes over fp32 copies: on an H100 the whole training step got 12% faster
    (bench/results/train_gpu.json, the `eagerloss` variant).
    """
    x = logits.float()  # fp32 for the softmax: bf16 log-probabilities are too coarse
    if softcap:
        x = torch.tanh(x / softcap) * softcap
    lse = torch.logsumexp(x, dim=-1, keepdim=True)  # [c, 1]
    x_target = x.gather(1, targets[:, None])  # [c, 1]
    loss = (lse - x_target).sum()
    # d loss / d logits = softmax - one_hot. The target's entry is computed apart, in fp32, and written
    # over the softmax: p - 1 rounded once (a p near 1 rounded to bf16 first would lose it).
    slope = 1.0 - (x / softcap).square() if softcap else None  # d softcap(l) / d l
    grad_target = torch.exp(x_target - lse) - 1.0
    probs = x.sub_(lse).exp_()
    if slope is not None:
        probs.mul_(slope)
        grad_target = grad_target * slope.gather(1, targets[:, None])
    grad = probs.to(logits.dtype)
    grad.scatter_(1, targets[:, None], grad_target.to(grad.dtype))
    return loss, grad


_compiled_loss_and_grad: Any = None


def _loss_and_grad_kernel(compiled: bool) -> Any:
    global _compiled_loss_and_grad
    if not compiled:
        return _loss_and_grad
    if _compiled_loss_and_grad is None:
        # dynamic: the last chunk's row count changes with every batch; one kernel serves them all.
        _compiled_loss_and_grad = torch.compile(_loss_and_grad, dynamic=True)
    return _compiled_loss_and_grad


class _FusedLinearCrossEntropy(torch.autograd.Function):
    """sum CE(softcap(hidden @ weight.T), targets) with d/d hidden computed in the forward, chunk by chunk."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int,
        softcap: float | None, compiled: bool,
    ) -> torch.Tensor:
        kernel = _loss_and_grad_kernel(compiled)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if hidden.requires_grad else None
        for start, end in chunk_bounds(hidden.shape[0], chunk):
            h, y = hidden[start:end], targets[start:end]
            loss, grad = kernel(h @ weight.T, y, softcap)  # logits [c, V] live only in this iteration
            total += loss
            if grad_hidden is not None:
                torch.mm(grad, weight, out=grad_hidden[start:end])
            del grad
        ctx.save_for_backward(grad_hidden)
        return total

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        (grad_hidden,) = ctx.saved_tensors
        return grad_hidden * grad_out.to(grad_hidden.dtype), None, None, None, None, None


def _plain_frozen_linear(head: torch.nn.Module) -> torch.Tensor | None:
    """The weight of a bias-free, frozen nn.Linear head (the fused path's case), else None."""
    if type(head) is torch.nn.Linear and head.bias is None and not head.weight.requires_grad:
        return head.weight
    return None


def chunked_cross_entropy_sum(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    head: torch.nn.Module,
    *,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    softcap: float | None = None,
    compiled: bool = False,
) -> torch.Tensor:
    """Sum of cross-entropy of `head(hidden)` [N, V] against `targets` [N], `chunk_tokens` rows at a time.

    compiled: run the fused path's softmax through torch.compile (see `_loss_and_grad`)."""
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be a positive number of rows, got {chunk_tokens}")
    n = hidden.shape[0]
    if n == 0:
        return hidden.sum().float() * 0.0  # keeps the graph connected, so backward() still works
    recompute = torch.is_grad_enabled() and hidden.requires_grad
    weight = _plain_frozen_linear(head)
    if weight is not None:
        return _FusedLinearCrossEntropy.apply(hidden, weight, targets, chunk_tokens, softcap, compiled)
    total = hidden.new_zeros((), dtype=torch.float32)
    for start, end in chunk_bounds(n, chunk_tokens):
        h, y = hidden[start:end], targets[start:end]
        if recompute:
            total = total + checkpoint(_chunk_loss, h, y, head, softcap, use_reentrant=False)
        else:
            total = total + _chunk_loss(h, y, head, softcap)
    return total


def compile_loss(model: torch.nn.Module, on: bool = True) -> None:
    """Make supervised_loss_sum run its per-chunk softmax through torch.compile for this model (or not)."""
    setattr(base_model(model), _COMPILED_MARK, on)


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
        compiled=getattr(base, _COMPILED_MARK, False),
    )
    return loss_sum, batch.num_supervised
