"""The one-pass LoRA forward computes what peft computes, gradients included, and saves the same adapter."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from trainer.model import ALL_PROJECTIONS, add_lora, fuse_lora_adds


def _lora(model, dropout: float = 0.0):
    peft_model = add_lora(model, SimpleNamespace(r=4, alpha=32.0, dropout=dropout, target_modules=list(ALL_PROJECTIONS)))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:  # peft starts B at zero, which would hide a wrong B path
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return peft_model


def _loss_and_grads(model, ids):
    model.zero_grad(set_to_none=True)
    loss = model(input_ids=ids, use_cache=False).logits.square().mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_fused_lora_matches_peft_forward_and_gradients(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    ids = torch.randint(5, 200, (2, 24))
    model = _lora(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32))
    ref_loss, ref_grads = _loss_and_grads(model, ids)
    assert fuse_lora_adds(model) == 7 * model.config.num_hidden_layers
    loss, grads = _loss_and_grads(model, ids)
    assert torch.allclose(loss, ref_loss, rtol=1e-6)
    assert ref_grads.keys() == grads.keys()
    for name in grads:
        assert torch.allclose(grads[name], ref_grads[name], rtol=1e-5, atol=1e-7), name

    # The check can fail: a wrong scaling shows up in the output.
    layer = next(m for m in model.modules() if hasattr(m, "_peft_forward"))
    layer.scaling["default"] *= 2
    assert not torch.allclose(model(input_ids=ids, use_cache=False).logits.square().mean(), ref_loss)


def test_fused_lora_falls_back_to_peft_when_adapters_are_disabled(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    ids = torch.randint(5, 200, (1, 16))
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    with torch.no_grad():
        plain = base(input_ids=ids, use_cache=False).logits
    model = _lora(base)
    fuse_lora_adds(model)
    with model.disable_adapter(), torch.no_grad():
        assert torch.allclose(model(input_ids=ids, use_cache=False).logits, plain, atol=1e-6)
