"""Packed attention isolates examples: each example's logits in a pack equal its logits run alone."""

from __future__ import annotations

import pytest
import torch

from trainer.attention import (
    PackedAttentionError,
    active_backend,
    flex_available,
    packed_attention_kwargs,
    use_packed_attention,
    use_standard_attention,
)
from trainer.data import TokenizedExample
from trainer.packing import collate

LENGTHS = (7, 11, 5)

# On CPU FlexAttention runs its uncompiled reference path (fine for tiny shapes), and says so.
pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")


def random_examples(vocab: int, lengths=LENGTHS, seed: int = 0) -> list[TokenizedExample]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(6, vocab, (n,), generator=g).tolist()
        out.append(TokenizedExample(input_ids=ids, labels=ids))
    return out


def packed_logits(model, examples, backend: str) -> list[torch.Tensor]:
    """Per-example logits of one packed forward, split back by example."""
    batch = collate(examples).to(next(model.parameters()).device)
    with torch.no_grad():
        logits = model(
            input_ids=batch.input_ids,
            position_ids=batch.position_ids,
            use_cache=False,
            **packed_attention_kwargs(batch, backend),
        ).logits[0]
    return list(logits.split(batch.seq_lengths))


def alone_logits(model, examples) -> list[torch.Tensor]:
    """Each example in a forward of its own: the reference packing must reproduce."""
    device = next(model.parameters()).device
    with torch.no_grad():
        return [model(torch.tensor([ex.input_ids], device=device)).logits[0] for ex in examples]


def max_diff(xs: list[torch.Tensor], ys: list[torch.Tensor]) -> float:
    return max((x.float() - y.float()).abs().max().item() for x, y in zip(xs, ys))


CPU_BACKENDS = ["sdpa_segments", "sdpa_mask"] + (["flex"] if flex_available() else [])


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_each_packed_example_matches_its_logits_alone(tiny_model, backend: str) -> None:
    examples = random_examples(tiny_model.config.vocab_size)
    reference = alone_logits(tiny_model, examples)
    assert use_packed_attention(tiny_model, backend) == backend
    assert max_diff(packed_logits(tiny_model, examples, backend), reference) < 1e-5


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_changing_a_neighbour_does_not_change_an_example(tiny_model, backend: str) -> None:
    vocab = tiny_model.config.vocab_size
    examples = random_examples(vocab)
    other = random_examples(vocab, seed=1)
    changed = [examples[0], other[1], examples[2]]  # the middle example swapped for a different one
    use_packed_attention(tiny_model, backend)
    before = packed_logits(tiny_model, examples, backend)
    after = packed_logits(tiny_model, changed, backend)
    assert max_diff([before[0], before[2]], [after[0], after[2]]) < 1e-6
    assert max_diff([before[1][:5]], [after[1][:5]]) > 1e-3  # and the swapped one did change


def test_stock_sdpa_with_restarted_positions_leaks_across_examples(tiny_model) -> None:
    """The hazard the packed backends exist for (transformers 5.x): restarted position_ids alone do not
    isolate a packed row under sdpa with default settings. This also shows the comparison above can fail."""
    examples = random_examples(tiny_model.config.vocab_size)
    reference = alone_logits(tiny_model, examples)
    batch = collate(examples)
    with torch.no_grad():
        logits = tiny_model(input_ids=batch.input_ids, position_ids=batch.position_ids).logits[0]
    assert max_diff(list(logits.split(batch.seq_lengths)), reference) > 1e-3


def test_the_isolation_check_catches_a_mask_that_spans_examples(tiny_model) -> None:
    """Our own backend, told the whole row is one example, must fail the same comparison."""
    examples = random_examples(tiny_model.config.vocab_size)
    reference = alone_logits(tiny_model, examples)
    use_packed_attention(tiny_model, "sdpa_mask")
    batch = collate(examples)
    one_segment = collate([TokenizedExample(input_ids=batch.input_ids[0].tolist(), labels=batch.input_ids[0].tolist())])
    with torch.no_grad():
        logits = tiny_model(
            input_ids=batch.input_ids,
            position_ids=batch.position_ids,
            use_cache=False,
            **packed_attention_kwargs(one_segment, "sdpa_mask"),
        ).logits[0]
    assert max_diff(list(logits.split(batch.seq_lengths)), reference) > 1e-3


def tiny_gemma2(**overrides):
    """A tiny Gemma-2 (attention and final logit soft-capping, sliding window, query_pre_attn_scalar)."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    settings = dict(
        vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, query_pre_attn_scalar=32, attn_logit_softcapping=2.0,
        final_logit_softcapping=5.0, sliding_window=4, initializer_range=0.5, attn_implementation="eager",
    )
    config = Gemma2Config(**{**settings, **overrides})
    torch.manual_seed(0)
    return Gemma2ForCausalLM(config).eval()


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_gemma2_softcap_scaling_and_sliding_window_match_eager_alone(backend: str) -> None:
    model = tiny_gemma2()
    examples = random_examples(128, lengths=(9, 6, 12))
    reference = alone_logits(model, examples)  # eager: soft-capping and the window done by transformers
    # The features really matter here, so matching the reference means they are implemented.
    assert max_diff(alone_logits(tiny_gemma2(attn_logit_softcapping=None), examples), reference) > 1e-3
    assert max_diff(alone_logits(tiny_gemma2(sliding_window=64), examples), reference) > 1e-3
    use_packed_attention(model, backend)
    assert max_diff(packed_logits(model, examples, backend), reference) < 1e-5


def test_training_without_packed_attention_is_refused(tiny_model) -> None:
    with pytest.raises(PackedAttentionError, match="call trainer.attention.use_packed_attention"):
        active_backend(tiny_model)
    use_packed_attention(tiny_model)
    assert active_backend(tiny_model) == "sdpa_segments"
    # A forward without packing info is an error, not a silent leak.
    with pytest.raises(PackedAttentionError, match="without packing info"):
        tiny_model(torch.tensor([[2, 7, 8]]))
    use_standard_attention(tiny_model)
    assert tiny_model(torch.tensor([[2, 7, 8]])).logits.shape == (1, 3, tiny_model.config.vocab_size)


def test_backend_choice_errors_say_what_to_do(tiny_model) -> None:
    with pytest.raises(PackedAttentionError, match="unknown attention backend 'fast'"):
        use_packed_attention(tiny_model, "fast")
    with pytest.raises(PackedAttentionError, match="needs a CUDA device"):
        use_packed_attention(tiny_model, "flash_attn")
    assert use_packed_attention(tiny_model, "auto") == "sdpa_segments"  # on CPU


def test_works_through_a_peft_model(tiny_model) -> None:
    from types import SimpleNamespace

    from trainer.model import add_lora

    examples = random_examples(tiny_model.config.vocab_size)
    reference = alone_logits(tiny_model, examples)
    lora = SimpleNamespace(r=4, alpha=32.0, dropout=0.0, target_modules=["q_proj", "v_proj"])
    peft_model = add_lora(tiny_model, lora)  # fresh LoRA B is zero: same function as the base model
    backend = use_packed_attention(peft_model)
    assert backend == "sdpa_segments"
    assert max_diff(packed_logits(peft_model, examples, backend), reference) < 1e-5


# -- GPU: every CUDA backend against the examples run alone (bf16, so a looser tolerance) -------------
def _cuda_backends() -> list[str]:
    from trainer.attention import flash_attn_available, torch_varlen_available

    found = []
    if torch.cuda.is_available():
        found += ["flash_attn"] if flash_attn_available() else []
        found += ["torch_varlen"] if torch_varlen_available() else []
        found += ["flex"] if flex_available() else []
        found += ["sdpa_mask"]
    return found or ["none"]


@pytest.mark.gpu
@pytest.mark.parametrize("backend", _cuda_backends())
def test_cuda_backend_isolates_examples_at_gemma_head_dim(backend: str) -> None:
    from transformers import GemmaConfig, GemmaForCausalLM

    if backend == "none":
        pytest.skip("no CUDA packed backend available")
    # Gemma-2b's attention shape (8 heads, 1 KV head, head_dim 256) in one small layer.
    config = GemmaConfig(
        vocab_size=512, hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=8,
        num_key_value_heads=1, head_dim=256, attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    model = GemmaForCausalLM(config).to("cuda", torch.bfloat16).eval()
    examples = random_examples(512, lengths=(300, 77, 513, 128))
    reference = alone_logits(model, examples)
    assert use_packed_attention(model, backend) == backend
    packed = packed_logits(model, examples, backend)
    scale = max(r.float().abs().max().item() for r in reference)
    assert max_diff(packed, reference) < 2e-2 * max(scale, 1.0)
