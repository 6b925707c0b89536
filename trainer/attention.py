"""Packed attention: several examples in one [1, T] row, and no token ever attends across examples.

Why our own: in transformers 5.x a packed row with restarted `position_ids` is NOT isolated by the stock
sdpa/eager path whenever a cache object exists (the default `use_cache=True` creates one, and then the
packed-sequence detection is skipped): an example's logits change with its neighbours. So the trainer
registers its own attention function in transformers' AttentionInterface and passes the packing layout
(cu_seqlens, computed once per batch on the host) through the model's forward kwargs.

Backends, best first:
- "flash_attn":   flash-attn's `flash_attn_varlen_func` (CUDA, fp16/bf16; GQA/MQA, softcap, sliding window native).
- "torch_varlen": `torch.nn.attention.varlen.varlen_attn` (CUDA; PyTorch's own flash kernel; no softcap).
- "flex":         FlexAttention with a document mask (`create_block_mask`, compiled; softcap via score_mod).
- "sdpa_segments": one causal `scaled_dot_product_attention` per example (the CPU default: cost sum n_i^2).
- "sdpa_mask":    one `scaled_dot_product_attention` over the row with a block-diagonal causal boolean mask
                  [T, T] (GPU fallback when nothing above is available).
Both SDPA paths write the softmax out explicitly when the model soft-caps attention logits (Gemma-2).

Tensor layout from transformers: query [1, Hq, T, D], key/value [1, Hkv, T, D]; we return [1, T, Hq, D].
"""

from __future__ import annotations

import importlib.util
import inspect
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from trainer.errors import PackedAttentionError

if TYPE_CHECKING:
    from trainer.packing import PackedBatch

BACKENDS = ("flash_attn", "torch_varlen", "flex", "sdpa_segments", "sdpa_mask")
# Names in transformers' AttentionInterface. None contains "flash", "sdpa" or "flex_attention": transformers
# runs its own availability checks on names that do.
_REGISTERED = {
    "flash_attn": "packed_fa_varlen",
    "torch_varlen": "packed_torch_varlen",
    "flex": "packed_flex_doc",
    "sdpa_mask": "packed_blockdiag",
    "sdpa_segments": "packed_segments",
}
_BACKEND_OF = {v: k for k, v in _REGISTERED.items()}


# -- capability probes ------------------------------------------------------------------------------
def flash_attn_available() -> bool:
    return torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None


def _torch_varlen() -> Callable[..., torch.Tensor] | None:
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


def torch_varlen_available() -> bool:
    return torch.cuda.is_available() and _torch_varlen() is not None


def flex_available() -> bool:
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


def _config_needs(config: Any) -> tuple[float | None, bool]:
    """(attention logit softcap or None, whether dropout > 0) of a model config."""
    cap = getattr(config, "attn_logit_softcapping", None)
    return (float(cap) if cap else None), float(getattr(config, "attention_dropout", 0.0) or 0.0) > 0.0


def choose_backend(device: torch.device, dtype: torch.dtype, config: Any) -> str:
    """The best backend for this device, dtype and model."""
    softcap, dropout = _config_needs(config)
    if device.type != "cuda":
        return "sdpa_segments"
    half = dtype in (torch.float16, torch.bfloat16)
    if half and flash_attn_available():
        return "flash_attn"
    if half and torch_varlen_available() and softcap is None and not dropout:
        return "torch_varlen"
    if flex_available() and not dropout:
        return "flex"
    return "sdpa_mask"  # one kernel launch per layer; sdpa_segments would launch one per example


def _check_backend(backend: str, device: torch.device, dtype: torch.dtype, config: Any) -> None:
    if backend not in BACKENDS:
        raise PackedAttentionError(f"unknown attention backend {backend!r}; choose one of auto, {', '.join(BACKENDS)}")
    softcap, dropout = _config_needs(config)
    half = dtype in (torch.float16, torch.bfloat16)
    cuda = device.type == "cuda"
    if backend == "flash_attn" and not (cuda and half and flash_attn_available()):
        raise PackedAttentionError(
            "attention backend flash_attn needs a CUDA device, a bf16/fp16 model and the flash-attn package "
            "(pip install flash-attn --no-build-isolation); or use backend auto"
        )
    if backend == "torch_varlen":
        if not (cuda and half and _torch_varlen() is not None):
            raise PackedAttentionError(
                "attention backend torch_varlen needs a CUDA device, a bf16/fp16 model and a torch with "
                "torch.nn.attention.varlen; or use backend auto"
            )
        if softcap is not None:
            raise PackedAttentionError("torch_varlen cannot soft-cap attention logits; use flash_attn or flex")
    if backend in ("torch_varlen", "flex") and dropout:
        raise PackedAttentionError(
            f"{backend} has no attention dropout: set the model's attention_dropout to 0 or use flash_attn/sdpa_mask"
        )
    if backend == "flex" and not flex_available():
        raise PackedAttentionError("this torch has no FlexAttention (torch.nn.attention.flex_attention); use auto")


# -- the attention functions (called by every attention layer) -------------------------------------
def _packing(kwargs: dict[str, Any]) -> tuple[torch.Tensor, int]:
    cu = kwargs.get("cu_seq_lens_q")
    if cu is None:
        raise PackedAttentionError(
            "packed attention was called without packing info: run the model through trainer.loss (or pass "
            "**packed_attention_kwargs(batch, backend)); for generation call use_standard_attention(model) first"
        )
    return cu, int(kwargs["max_length_q"])


def _window(sliding_window: int | None, max_seqlen: int) -> int | None:
    """The sliding window if it can matter: a window longer than every segment changes nothing."""
    return sliding_window if sliding_window and max_seqlen > sliding_window else None


def _check_module(module: torch.nn.Module, query: torch.Tensor) -> None:
    if query.shape[0] != 1:
        raise PackedAttentionError(f"packed attention expects one packed row (batch size 1), got {query.shape[0]}")
    if not getattr(module, "is_causal", True):
        raise PackedAttentionError("packed attention is causal; this model's attention is bidirectional")


def _masked_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    scaling: float | None,
    dropout: float,
    softcap: float | None,
) -> torch.Tensor:
    """Attention of [1, H, t, D] tensors under a boolean mask (None: plain causal); returns [1, H, t, D]."""
    groups = query.shape[1] // key.shape[1]
    if softcap is None:
        return F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, dropout_p=dropout, scale=scaling,
            is_causal=mask is None, enable_gqa=groups > 1,
        )
    # SDPA cannot soft-cap, so this path writes the softmax out (CPU/test-sized inputs only).
    if mask is None:
        t = torch.arange(query.shape[2], device=query.device)
        mask = t[:, None] >= t[None, :]
    k = key.repeat_interleave(groups, dim=1)
    v = value.repeat_interleave(groups, dim=1)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, k.transpose(2, 3)) * scale
    scores = torch.tanh(scores / softcap) * softcap
    scores = scores.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probs = F.dropout(probs, p=dropout, training=dropout > 0)
    return torch.matmul(probs, v)


def _causal_window_mask(t: int, window: int, device: torch.device) -> torch.Tensor:
    i = torch.arange(t, device=device)
    diff = i[:, None] - i[None, :]
    return (diff >= 0) & (diff < window)


def _sdpa_segments_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    softcap: float | None = None,
    sliding_window: int | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """One causal SDPA call per segment: sum of n_i^2 work instead of T^2 (16x faster than the mask on CPU
    for six 300-token examples), isolated by construction. Segment lengths come from the host."""
    _check_module(module, query)
    _, max_seqlen = _packing(kwargs)
    lengths: list[int] = kwargs["packed_seq_lengths"]
    window = _window(sliding_window, max_seqlen)
    outs = []
    for q, k, v in zip(query.split(lengths, 2), key.split(lengths, 2), value.split(lengths, 2)):
        n = q.shape[2]
        mask = _causal_window_mask(n, window, q.device) if window is not None and n > window else None
        outs.append(_masked_attention(q, k, v, mask, scaling, dropout, softcap))
    return torch.cat(outs, dim=2).transpose(1, 2).contiguous(), None


def _sdpa_mask_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    softcap: float | None = None,
    sliding_window: int | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """One SDPA call over the whole row with a block-diagonal causal mask [T, T] (built once per batch)."""
    _check_module(module, query)
    _, max_seqlen = _packing(kwargs)
    mask = kwargs["packed_mask"]  # [1, 1, T, T] bool: True where attending is allowed
    window = _window(sliding_window, max_seqlen)
    if window is not None:
        mask = mask & _causal_window_mask(query.shape[2], window, query.device)
    out = _masked_attention(query, key, value, mask, scaling, dropout, softcap)
    return out.transpose(1, 2).contiguous(), None


def _flash_attn_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    softcap: float | None = None,
    sliding_window: int | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    from flash_attn import flash_attn_varlen_func

    _check_module(module, query)
    cu, max_seqlen = _packing(kwargs)
    window = _window(sliding_window, max_seqlen)
    # [1, H, T, D] -> [T, H, D]; flash-attn takes fewer KV heads than query heads as they are (MQA/GQA).
    q, k, v = (x.transpose(1, 2)[0] for x in (query, key, value))
    out = flash_attn_varlen_func(
        q, k, v, cu, cu, max_seqlen, max_seqlen,
        dropout_p=dropout,
        softmax_scale=scaling,
        causal=True,
        window_size=(window - 1, 0) if window else (-1, -1),
        softcap=softcap or 0.0,
    )
    return out.unsqueeze(0), None


def _torch_varlen_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    softcap: float | None = None,
    sliding_window: int | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    _check_module(module, query)
    if softcap:
        raise PackedAttentionError("torch_varlen cannot soft-cap attention logits; use flash_attn or flex")
    if dropout:
        raise PackedAttentionError("torch_varlen has no attention dropout; set attention_dropout to 0")
    cu, max_seqlen = _packing(kwargs)
    window = _window(sliding_window, max_seqlen)
    varlen_attn = _torch_varlen()
    params = _varlen_params()
    q, k, v = (x.transpose(1, 2)[0] for x in (query, key, value))
    groups = q.shape[1] // k.shape[1]
    extra: dict[str, Any] = {}
    # The varlen API has changed between torch releases: use what this torch offers.
    if groups > 1:
        if "enable_gqa" in params:
            extra["enable_gqa"] = True
        else:
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    scale = scaling if scaling is not None else q.shape[-1] ** -0.5
    if "scale" in params:
        extra["scale"] = scale
    elif not math.isclose(scale, q.shape[-1] ** -0.5):
        q = q * (scale * math.sqrt(q.shape[-1]))
    if "window_size" in params:
        extra["window_size"] = (window - 1, 0) if window else (-1, 0)
        if "is_causal" in params:
            extra["is_causal"] = True
    else:
        if window:
            raise PackedAttentionError("this torch's varlen_attn has no sliding window; use flash_attn or flex")
        extra["is_causal"] = True
    out = varlen_attn(q, k, v, cu, cu, max_seqlen, max_seqlen, **extra)
    return out.unsqueeze(0), None


_VARLEN_PARAMS: set[str] | None = None


def _varlen_params() -> set[str]:
    global _VARLEN_PARAMS
    if _VARLEN_PARAMS is None:
        fn = _torch_varlen()
        _VARLEN_PARAMS = set(inspect.signature(fn).parameters) if fn is not None else set()
    return _VARLEN_PARAMS


class FlexMasks:
    """Block masks of one packed batch, built on first use and shared by all layers of the forward."""

    def __init__(self, document_ids: torch.Tensor) -> None:
        self.document_ids = document_ids  # [T] int: the segment of each position
        self._masks: dict[int | None, Any] = {}

    def get(self, window: int | None) -> Any:
        if window not in self._masks:
            from torch.nn.attention.flex_attention import create_block_mask

            doc = self.document_ids
            t = doc.shape[0]

            def document_causal(b: Any, h: Any, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
                allowed = (doc[q] == doc[kv]) & (q >= kv)
                return allowed & (q - kv < window) if window else allowed

            compile_mask = doc.device.type == "cuda"  # compiled: never materialises the [T, T] mask
            self._masks[window] = create_block_mask(
                document_causal, None, None, t, t, device=doc.device, _compile=compile_mask
            )
        return self._masks[window]


_COMPILED_FLEX: Callable[..., torch.Tensor] | None = None


def _flex(device: torch.device) -> Callable[..., torch.Tensor]:
    """Compiled FlexAttention on CUDA (a fused kernel); the uncompiled reference path elsewhere (CPU
    tests: compiling there needs a C++ toolchain and buys nothing)."""
    from torch.nn.attention.flex_attention import flex_attention

    global _COMPILED_FLEX
    if device.type != "cuda":
        return flex_attention
    if _COMPILED_FLEX is None:
        _COMPILED_FLEX = torch.compile(flex_attention)
    return _COMPILED_FLEX


def _flex_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    softcap: float | None = None,
    sliding_window: int | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    _check_module(module, query)
    if dropout:
        raise PackedAttentionError("flex has no attention dropout; set attention_dropout to 0")
    _, max_seqlen = _packing(kwargs)
    masks: FlexMasks = kwargs["packed_flex_masks"]
    block_mask = masks.get(_window(sliding_window, max_seqlen))
    score_mod = None
    if softcap:
        cap = float(softcap)

        def score_mod(score: torch.Tensor, b: Any, h: Any, q: Any, kv: Any) -> torch.Tensor:
            return torch.tanh(score / cap) * cap

    out = _flex(query.device)(
        query, key, value,
        score_mod=score_mod,
        block_mask=block_mask,
        scale=scaling,
        enable_gqa=query.shape[1] != key.shape[1],
    )
    return out.transpose(1, 2).contiguous(), None


_FUNCTIONS = {
    "flash_attn": _flash_attn_attention,
    "torch_varlen": _torch_varlen_attention,
    "flex": _flex_attention,
    "sdpa_mask": _sdpa_mask_attention,
    "sdpa_segments": _sdpa_segments_attention,
}


# -- wiring -----------------------------------------------------------------------------------------
def base_model(model: torch.nn.Module) -> Any:
    """The transformers model inside a peft wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def use_packed_attention(model: torch.nn.Module, backend: str = "auto") -> str:
    """Switch `model` (a transformers causal LM, or a peft model around one) to packed attention.

    Returns the backend used. Afterwards every forward needs `packed_attention_kwargs(batch, backend)`
    (trainer.loss does this); generation needs `use_standard_attention(model)` first.
    """
    from transformers import AttentionInterface

    base = base_model(model)
    param = next(base.parameters())
    if backend == "auto":
        backend = choose_backend(param.device, param.dtype, base.config)
    _check_backend(backend, param.device, param.dtype, base.config)
    name = _REGISTERED[backend]
    AttentionInterface.register(name, _FUNCTIONS[backend])
    base.set_attn_implementation(name)
    if base.config._attn_implementation != name:
        raise PackedAttentionError(
            f"{type(base).__name__} does not accept a custom attention function (transformers' "
            "AttentionInterface), so packed examples cannot be isolated: train this model without packing"
        )
    return backend


def use_standard_attention(model: torch.nn.Module, implementation: str = "sdpa") -> None:
    """Back to a stock attention (for generation with padded batches)."""
    base_model(model).set_attn_implementation(implementation)


def active_backend(model: torch.nn.Module) -> str:
    """The packed backend `model` uses; an error when use_packed_attention was not called."""
    name = getattr(base_model(model).config, "_attn_implementation", None)
    if name not in _BACKEND_OF:
        raise PackedAttentionError(
            f"the model uses {name!r} attention, which lets packed examples see each other: "
            "call trainer.attention.use_packed_attention(model) before training on packed batches"
        )
    return _BACKEND_OF[name]


def document_ids(batch: PackedBatch) -> torch.Tensor:
    """[T] segment index of every position, computed on the batch's device without a host sync."""
    cu = batch.cu_seqlens
    lengths = (cu[1:] - cu[:-1]).long()
    segments = torch.arange(lengths.shape[0], device=cu.device)
    return torch.repeat_interleave(segments, lengths, output_size=batch.num_tokens)


def packed_attention_kwargs(batch: PackedBatch, backend: str) -> dict[str, Any]:
    """The forward kwargs that carry the packing layout to the attention functions (once per batch)."""
    kwargs: dict[str, Any] = {
        "cu_seq_lens_q": batch.cu_seqlens,
        "cu_seq_lens_k": batch.cu_seqlens,
        "max_length_q": batch.max_seqlen,
        "max_length_k": batch.max_seqlen,
    }
    if backend == "sdpa_segments":
        kwargs["packed_seq_lengths"] = batch.seq_lengths
    elif backend == "sdpa_mask":
        doc = document_ids(batch)
        t = torch.arange(batch.num_tokens, device=doc.device)
        causal = t[:, None] >= t[None, :]
        kwargs["packed_mask"] = ((doc[:, None] == doc[None, :]) & causal)[None, None]
    elif backend == "flex":
        kwargs["packed_flex_masks"] = FlexMasks(document_ids(batch).to(torch.int32))
    elif backend not in BACKENDS:
        raise PackedAttentionError(f"unknown attention backend {backend!r}")
    return kwargs
