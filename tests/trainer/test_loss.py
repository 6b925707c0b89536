"""The chunked, packed, supervised-only loss against full-logit references (fp32, tight tolerances)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import trainer.loss as loss_module
from schemas import Example
from trainer.attention import packed_attention_kwargs, use_packed_attention, use_standard_attention
from trainer.data import IGNORE_INDEX, encode_examples
from trainer.model import ALL_PROJECTIONS, add_lora
from trainer.packing import collate
from trainer.loss import chunked_cross_entropy_sum, supervised_loss_sum

QA = [
    ("오늘 날씨가 어때요?", "맑고 따뜻합니다. 산책하기 좋은 날이에요."),
    ("Write a short poem about the sea.", "Waves roll in,\nwaves roll out,\nthe sea keeps time."),
    ("대한민국의 수도는 어디인가요?", "서울입니다."),
    ("Sort the list: 3, 1, 2.", "1, 2, 3"),
    ("Give three tips for staying healthy.", "Eat vegetables, sleep well, and exercise every day."),
]


@pytest.fixture
def lora_model(tiny_model):
    """The tiny model with LoRA on all seven projections and non-zero adapter weights."""
    lora = SimpleNamespace(r=4, alpha=32.0, dropout=0.0, target_modules=list(ALL_PROJECTIONS))
    model = add_lora(tiny_model, lora)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:  # peft starts B at zero; give the adapter an effect and a gradient path
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model


@pytest.fixture
def examples(tiny_tokenizer):
    exs = [Example(id=str(i), instruction=q, output=a) for i, (q, a) in enumerate(QA)]
    encoded, stats = encode_examples(exs, tiny_tokenizer, max_len=256)
    assert stats.kept == len(QA)
    return encoded


def lora_grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def zero_grads(model) -> None:
    for p in model.parameters():
        p.grad = None


def assert_grads_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and len(a) > 0
    for name in a:
        # Relative to the tensor's scale: fp32 sums in another order differ by ~1e-7 of the largest entry.
        scale = b[name].abs().max().item()
        assert scale > 0, f"{name} has no gradient"
        assert (a[name] - b[name]).abs().max().item() <= 1e-5 * scale, name


def reference_loss_alone(model, example) -> torch.Tensor:
    """HF's way: one example, stock attention, full logits, shifted cross-entropy, summed."""
    ids = torch.tensor([example.input_ids])
    labels = torch.tensor([example.labels])
    logits = model(ids).logits[0, :-1]
    return F.cross_entropy(logits, labels[0, 1:], ignore_index=IGNORE_INDEX, reduction="sum")


def test_packed_loss_equals_the_sum_of_each_example_alone(lora_model, examples) -> None:
    reference = sum(reference_loss_alone(lora_model, ex) for ex in examples)
    reference.backward()
    expected_grads = lora_grads(lora_model)
    zero_grads(lora_model)

    use_packed_attention(lora_model)
    batch = collate(examples)
    loss_sum, n = supervised_loss_sum(lora_model, batch, chunk_tokens=16)
    assert n == sum(ex.num_supervised for ex in examples) == batch.num_supervised
    assert abs(loss_sum.item() - reference.item()) < 1e-5 * max(1.0, abs(reference.item()))
    loss_sum.backward()
    assert_grads_close(lora_grads(lora_model), expected_grads)


@pytest.mark.parametrize("chunk_tokens", [1, 7, 64, 100_000])
def test_chunked_loss_equals_full_logit_loss_value_and_lora_gradients(lora_model, examples, chunk_tokens) -> None:
    backend = use_packed_attention(lora_model)
    batch = collate(examples, pad_to_multiple=32)
    # Reference: the same packed forward, all logits at once, cross-entropy on the shifted labels.
    logits = lora_model(
        input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False,
        **packed_attention_kwargs(batch, backend),
    ).logits[0]
    full = F.cross_entropy(logits, batch.labels[0], ignore_index=IGNORE_INDEX, reduction="sum")
    full.backward()
    expected_grads = lora_grads(lora_model)
    zero_grads(lora_model)

    chunked, _ = supervised_loss_sum(lora_model, batch, chunk_tokens=chunk_tokens)
    assert abs(chunked.item() - full.item()) < 1e-5 * max(1.0, abs(full.item()))
    chunked.backward()
    assert_grads_close(lora_grads(lora_model), expected_grads)


def test_final_logit_softcapping_is_applied() -> None:
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(0)
    config = Gemma2Config(
        vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, final_logit_softcapping=2.0, initializer_range=0.5,
        attn_implementation="eager",
    )
    model = Gemma2ForCausalLM(config).eval()
    ids = torch.randint(6, 96, (20,)).tolist()
    ex = SimpleNamespace(input_ids=ids, labels=[IGNORE_INDEX] * 8 + ids[8:])
    reference = reference_loss_alone(model, ex)  # HF applies the final soft-cap in its forward
    use_packed_attention(model)
    loss_sum, _ = supervised_loss_sum(model, collate([ex]), chunk_tokens=5)
    assert abs(loss_sum.item() - reference.item()) < 1e-5 * abs(reference.item())


def final_hidden_grad(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, d loss / d final hidden state [T, H]) for a packed batch."""
    captured = {}
    norm = model.get_base_model().model.norm

    def keep(_module, _inputs, output):
        output.retain_grad()
        captured["h"] = output

    handle = norm.register_forward_hook(keep)
    try:
        loss_sum, _ = supervised_loss_sum(model, batch, chunk_tokens=8)
        loss_sum.backward()
    finally:
        handle.remove()
    return loss_sum.detach(), captured["h"].grad[0]


def test_prompt_positions_are_never_trained_to_predict_the_prompt(lora_model, examples) -> None:
    """Prompt tokens still shape the answer through attention, so the real check is on the head: no loss
    term reads the final hidden state at a prompt position (other than the last one, which predicts the
    first answer token), nor at an example's last token."""
    use_packed_attention(lora_model)
    batch = collate(examples)
    _, grad = final_hidden_grad(lora_model, batch)
    trained = set(batch.supervised_index.tolist())
    per_position = grad.abs().sum(-1)
    for t in range(batch.num_tokens):
        if t in trained:
            assert per_position[t] > 0, t
        else:
            assert per_position[t] == 0, t
    # The trained positions are exactly: from each example's last prompt token to its second-to-last token.
    start = 0
    expected = set()
    for ex in examples:
        first_answer = next(i for i, y in enumerate(ex.labels) if y != IGNORE_INDEX)
        expected |= set(range(start + first_answer - 1, start + len(ex) - 1))
        start += len(ex)
    assert trained == expected

    # And the check can fail: give one prompt position a target, and its gradient and the loss change.
    zero_grads(lora_model)
    loss_before, _ = supervised_loss_sum(lora_model, batch)
    t = 1  # predicting the second prompt token of the first example
    leaky = collate(examples)
    leaky.labels[0, t] = leaky.input_ids[0, t + 1]
    leaky.supervised_index = torch.cat([torch.tensor([t]), leaky.supervised_index])
    leaky.supervised_targets = torch.cat([leaky.labels[0, t : t + 1], leaky.supervised_targets])
    leaky.num_supervised += 1
    loss_leaky, grad_leaky = final_hidden_grad(lora_model, leaky)
    assert grad_leaky[t].abs().sum() > 0
    assert loss_leaky.item() > loss_before.item() + 1e-3


def test_a_batch_without_supervised_tokens_gives_zero_and_still_backpropagates(lora_model) -> None:
    use_packed_attention(lora_model)
    ex = SimpleNamespace(input_ids=[2, 7, 8, 9], labels=[IGNORE_INDEX] * 4)
    loss_sum, n = supervised_loss_sum(lora_model, collate([ex]))
    assert n == 0 and loss_sum.item() == 0.0
    loss_sum.backward()


def test_backward_keeps_no_vocabulary_sized_logits(monkeypatch) -> None:
    """Autograd saves no [chunk, V] logits for backward: each chunk is recomputed. Without the checkpoint
    the same probe sees them, so the probe works."""
    vocab, hidden, n, chunk = 4096, 16, 48, 16
    head = torch.nn.Linear(hidden, vocab, bias=False)
    h = torch.randn(n, hidden, requires_grad=True)
    y = torch.randint(0, vocab, (n,))

    def largest_saved(fn) -> int:
        sizes = []

        def pack(t):
            sizes.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = fn()
        out.backward()
        return max(sizes)

    checkpointed = largest_saved(lambda: chunked_cross_entropy_sum(h, y, head, chunk_tokens=chunk))
    assert checkpointed < chunk * vocab
    monkeypatch.setattr(loss_module, "checkpoint", lambda fn, *args, **kw: fn(*args))
    plain = largest_saved(lambda: chunked_cross_entropy_sum(h, y, head, chunk_tokens=chunk))
    assert plain >= chunk * vocab


def test_chunk_size_must_be_positive() -> None:
    head = torch.nn.Linear(4, 8)
    with pytest.raises(ValueError, match="chunk_tokens"):
        chunked_cross_entropy_sum(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), head, chunk_tokens=0)


def test_eval_mode_without_grad_gives_the_same_loss(lora_model, examples) -> None:
    use_packed_attention(lora_model)
    batch = collate(examples)
    with_grad, _ = supervised_loss_sum(lora_model, batch)
    with torch.no_grad():
        without, _ = supervised_loss_sum(lora_model, batch)
    assert abs(with_grad.item() - without.item()) < 1e-5 * abs(without.item())
    use_standard_attention(lora_model)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("softcap", [None, 3.0])
def test_fused_head_path_matches_full_logits_and_saves_no_logits(softcap, compiled) -> None:
    """A frozen bias-free head (the LoRA case) takes the fused path: gradient computed in the forward.
    Its value and d loss / d hidden equal the full-logit computation, and nothing of [chunk, V] is saved."""
    torch.manual_seed(0)
    vocab, hidden, n, chunk = 512, 16, 40, 16
    head = torch.nn.Linear(hidden, vocab, bias=False).requires_grad_(False)
    assert loss_module._plain_frozen_linear(head) is not None
    y = torch.randint(0, vocab, (n,))
    h_ref = (torch.randn(n, hidden) * 3).requires_grad_(True)
    logits = head(h_ref)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    reference = F.cross_entropy(logits, y, reduction="sum")
    reference.backward()

    h = h_ref.detach().clone().requires_grad_(True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        fused = chunked_cross_entropy_sum(h, y, head, chunk_tokens=chunk, softcap=softcap, compiled=compiled)
    (fused * 2.0).backward()  # the upstream gradient must be applied
    assert abs(fused.item() - reference.item()) < 1e-5 * reference.item()
    assert torch.allclose(h.grad, 2.0 * h_ref.grad, rtol=1e-5, atol=1e-6)
    assert max(saved) < chunk * vocab


def test_the_target_gradient_survives_bf16_when_the_model_is_confident() -> None:
    """softmax - one_hot at the target is p - 1: for p = 0.9995 that is -5e-4. Rounding p to bf16 first
    (steps of 2^-8 near 1) would turn it into 0 or -3.9e-3; it must come out as -5e-4 to bf16 precision."""
    vocab = 1000
    logits = torch.zeros(3, vocab)
    targets = torch.tensor([5, 17, 999])
    logits[torch.arange(3), targets] = torch.tensor([14.5, 15.0, 16.0])  # p of the target: 0.998 .. 0.99989
    reference = torch.softmax(logits.double(), dim=-1)
    reference[torch.arange(3), targets] -= 1.0
    loss, grad = loss_module._loss_and_grad(logits.to(torch.bfloat16), targets, None)
    assert grad.dtype == torch.bfloat16
    got = grad.double()[torch.arange(3), targets]
    want = reference[torch.arange(3), targets]
    assert torch.all((got - want).abs() <= 2**-8 * want.abs()), (got, want)
    assert torch.allclose(grad.double(), reference, atol=1e-6)
    assert abs(loss.item() + torch.log_softmax(logits.double(), -1)[torch.arange(3), targets].sum().item()) < 1e-5


@pytest.mark.parametrize("n", [1, 2, 511, 512, 513, 1025, 4097, 6000])
def test_chunks_cover_every_row_once_and_are_nearly_equal(n) -> None:
    bounds = loss_module.chunk_bounds(n, 512)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [end - start for start, end in bounds]
    assert len(sizes) == -(-n // 512) and max(sizes) <= 512 and max(sizes) - min(sizes) <= 1
    if n > 512:
        assert min(sizes) >= 256  # never a 1-row remainder (the compiled softmax would compile again)
