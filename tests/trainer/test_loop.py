"""The loop: the data plan, the LR schedule, loss normalisation, a whole run's outputs, two processes."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainer_examples import write_examples
from trainer.attention import use_packed_attention
from trainer.data import TokenizedExample
from trainer.loop import build_scheduler, lr_multiplier, train, train_step
from trainer.packing import plan_steps
from trainer.loss import supervised_loss_sum
from trainer.metrics import read_metrics
from trainer.model import add_lora
from trainer.packing import collate
from trainer.settings import LoraSettings, TrainSettings

ROOT = Path(__file__).resolve().parents[2]
def small_settings(model_dir: Path, **kw: object) -> TrainSettings:
    base = dict(model=str(model_dir), max_len=64, token_budget=128, grad_accum=2, lr=3e-3, warmup_steps=1,
                eval_fraction=0.1, eval_every=2, checkpoint_every=0, loss_chunk_tokens=64)
    return TrainSettings(**{**base, **kw})


# --- the plan --------------------------------------------------------------------------------------


def test_plan_covers_every_example_once_per_epoch_and_is_deterministic() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(5, 100) for _ in range(300)]
    steps, skipped = plan_steps(lengths, token_budget=256, grad_accum=3, world_size=1, epochs=2, seed=7)
    assert skipped == 0
    for epoch in (0, 1):
        seen = sorted(i for s in steps if s.epoch == epoch for mb in s.micro_batches for i in mb)
        assert seen == list(range(300))
    assert all(sum(lengths[i] for i in mb) <= 256 for s in steps for mb in s.micro_batches)
    assert all(len(s.micro_batches) <= 3 for s in steps)
    again, _ = plan_steps(lengths, token_budget=256, grad_accum=3, world_size=1, epochs=2, seed=7)
    assert again == steps
    order = [[mb for s in steps if s.epoch == e for mb in s.micro_batches] for e in (0, 1)]
    assert order[0] != order[1], "each epoch should see its micro-batches in a new order"
    other_seed, _ = plan_steps(lengths, token_budget=256, grad_accum=3, world_size=1, epochs=1, seed=8)
    assert [s.micro_batches for s in other_seed] != [s.micro_batches for s in steps if s.epoch == 0]


def test_plan_gives_every_rank_the_same_number_of_micro_batches() -> None:
    rng = random.Random(1)
    lengths = [rng.randint(5, 100) for _ in range(301)]
    one, _ = plan_steps(lengths, token_budget=256, grad_accum=2, world_size=1, epochs=1, seed=0)
    three, skipped = plan_steps(lengths, token_budget=256, grad_accum=2, world_size=3, epochs=1, seed=0)
    assert all(s.micro_batches and len(s.micro_batches) % 3 == 0 for s in three)
    assert all(len(s.micro_batches) == 6 for s in three[:-1])
    used = sum(len(mb) for s in three for mb in s.micro_batches)
    assert used + skipped == 301
    # The same micro-batches in the same order; at most world_size - 1 left out at the epoch's end.
    n_one, n_three = (sum(len(s.micro_batches) for s in plan) for plan in (one, three))
    assert n_one - 2 <= n_three <= n_one
    assert [mb for s in three for mb in s.micro_batches] == [mb for s in one for mb in s.micro_batches][:n_three]


# --- the schedule ----------------------------------------------------------------------------------


@pytest.mark.parametrize("warmup,total", [(0, 10), (3, 20), (5, 7)])
def test_cosine_schedule_is_hf_cosine_with_warmup(warmup: int, total: int) -> None:
    from transformers import get_cosine_schedule_with_warmup

    p = torch.nn.Parameter(torch.zeros(1))
    ours = build_scheduler(torch.optim.SGD([p], lr=1.0), warmup=warmup, total=total)
    hf_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    hf = get_cosine_schedule_with_warmup(hf_opt, warmup, total)
    for _ in range(total):
        assert ours.get_last_lr()[0] == pytest.approx(hf.get_last_lr()[0], abs=1e-12)
        ours.optimizer.step(), ours.step(), hf_opt.step(), hf.step()


def test_min_lr_ratio_and_constant_schedule() -> None:
    assert lr_multiplier(10, warmup=0, total=10, min_ratio=0.1) == pytest.approx(0.1)
    assert lr_multiplier(5, warmup=2, total=10, kind="constant") == 1.0
    assert lr_multiplier(1, warmup=2, total=10, kind="constant") == 0.5


# --- normalisation ---------------------------------------------------------------------------------


def _lora_model(tiny_model: torch.nn.Module) -> torch.nn.Module:
    use_packed_attention(tiny_model, "sdpa_mask")
    torch.manual_seed(0)
    model = add_lora(tiny_model, LoraSettings(r=4, alpha=8))
    with torch.no_grad():  # B starts at zero, which would leave A without gradient: give it some
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    return model.train()


def _examples() -> list[TokenizedExample]:
    g = torch.Generator().manual_seed(0)
    out = []
    for n, prompt in ((9, 3), (30, 10), (14, 2)):
        ids = torch.randint(6, 500, (n,), generator=g).tolist()
        out.append(TokenizedExample(input_ids=ids, labels=[-100] * prompt + ids[prompt:]))
    return out


def test_a_step_weighs_every_supervised_token_equally_across_micro_batches(tiny_model: torch.nn.Module) -> None:
    """Two micro-batches [e0] and [e1, e2] must give the update one micro-batch [e0, e1, e2] gives."""
    model = _lora_model(tiny_model)
    params = [p for p in model.parameters() if p.requires_grad]
    start = [p.detach().clone() for p in params]
    exs = _examples()

    def update(groups: list[list[TokenizedExample]]) -> list[torch.Tensor]:
        with torch.no_grad():
            for p, s in zip(params, start):
                p.copy_(s)
        batches = [collate(g) for g in groups]
        sgd = torch.optim.SGD(params, lr=1.0)  # plain SGD: the update IS the gradient
        sched = torch.optim.lr_scheduler.LambdaLR(sgd, lambda s: 1.0)
        train_step(model, batches, n_supervised=sum(b.num_supervised for b in batches), params=params,
                   optimizer=sgd, scheduler=sched, max_grad_norm=0.0, chunk_tokens=8)
        return [s - p.detach() for p, s in zip(params, start)]

    split = update([[exs[0]], [exs[1], exs[2]]])
    whole = update([exs])
    for a, b in zip(split, whole):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-8)

    # The mean of micro-batch means is a different gradient: the check above can tell them apart.
    for p, s in zip(params, start):
        with torch.no_grad():
            p.copy_(s)
    b0, b12 = collate([exs[0]]), collate([exs[1], exs[2]])
    (supervised_loss_sum(model, b0, 8)[0] / b0.num_supervised / 2
     + supervised_loss_sum(model, b12, 8)[0] / b12.num_supervised / 2).backward()
    diff = max((p.grad - g).abs().max().item() for p, g in zip(params, whole))
    assert diff > 1e-4


# --- a whole run -----------------------------------------------------------------------------------


def test_a_run_writes_metrics_plot_adapter_and_a_progress_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_examples(tmp_path / "examples.jsonl", 60)
    settings = small_settings(tiny_model_dir, eval_every=2)
    stream = io.StringIO()
    result = train(settings, tmp_path / "run", data_path=data, progress_stream=stream)
    assert result.finished and result.step == result.total_steps >= 4

    records = read_metrics(tmp_path / "run/train/metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, result.total_steps + 1))
    for r in records:
        assert {"loss", "lr", "grad_norm", "tokens", "supervised_tokens", "tokens_per_s", "mfu", "peak_gib"} <= r.keys()
        assert r["loss"] > 0 and r["tokens_per_s"] > 0 and 0 < r["supervised_tokens"] < r["tokens"]
        assert r["mfu"] is None  # no known peak FLOP/s for a CPU
    with_eval = [r["step"] for r in records if "eval_loss" in r]
    assert with_eval == sorted({s for s in range(2, result.total_steps + 1, 2)} | {result.total_steps})
    assert records[0]["lr"] == 0.0 and records[1]["lr"] == pytest.approx(settings.lr)  # one warm-up step

    assert (tmp_path / "run/train/loss.png").read_bytes()[:4] == b"\x89PNG"
    adapter = tmp_path / "run/train/adapter"
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in adapter.iterdir()}
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["r"] == 4 and cfg["lora_alpha"] == 32 and set(cfg["target_modules"]) == set(settings.lora.target_modules)
    lines = stream.getvalue()
    assert f"step {result.total_steps}/{result.total_steps}" in lines and "ETA" in lines and "tok/s" in lines


def test_gradient_checkpointing_leaves_the_losses_unchanged(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_examples(tmp_path / "examples.jsonl", 40)
    plain = train(small_settings(tiny_model_dir, max_steps=3), tmp_path / "a", data_path=data,
                  progress_stream=io.StringIO())
    ckpt = train(small_settings(tiny_model_dir, max_steps=3, gradient_checkpointing=True), tmp_path / "b",
                 data_path=data, progress_stream=io.StringIO())
    assert ckpt.losses == pytest.approx(plain.losses, rel=1e-6)


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_same_global_batch(tiny_model_dir: Path, tmp_path: Path) -> None:
    """torchrun with 2 CPU processes (gloo), one micro-batch each per step, against one process that
    accumulates the same 2 micro-batches: the same steps, so the same losses and the same adapter."""
    data = write_examples(tmp_path / "examples.jsonl", 50)
    common = ["--model", str(tiny_model_dir), "--max-len", "64", "--token-budget", "128", "--lr", "3e-3",
              "--warmup-steps", "1", "--eval-fraction", "0.1", "--eval-every", "2", "--max-steps", "4",
              "--loss-chunk-tokens", "64", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "trainer", "--", "train", "--run", str(tmp_path / "ddp"), "--data", str(data), "--grad-accum", "1",
         *common],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = train(
        small_settings(tiny_model_dir, grad_accum=2, max_steps=4, device="cpu"), tmp_path / "one",
        data_path=data, progress_stream=io.StringIO(),
    )
    ddp = {r["step"]: r for r in read_metrics(tmp_path / "ddp/train/metrics.jsonl")}
    assert sorted(ddp) == [1, 2, 3, 4]
    for step, loss in single.losses.items():
        assert ddp[step]["loss"] == pytest.approx(loss, rel=1e-5)
    one = read_metrics(tmp_path / "one/train/metrics.jsonl")
    # Steps without an evaluation have no eval_loss: compare the steps that have one, and that they are the same.
    eval_one = {r["step"]: r["eval_loss"] for r in one if r.get("eval_loss") is not None}
    eval_ddp = {s: r["eval_loss"] for s, r in ddp.items() if r.get("eval_loss") is not None}
    assert eval_one and sorted(eval_one) == sorted(eval_ddp)
    for step, value in eval_one.items():
        assert eval_ddp[step] == pytest.approx(value, rel=1e-5)

    from safetensors.torch import load_file

    a = load_file(tmp_path / "ddp/train/adapter/adapter_model.safetensors")
    b = load_file(tmp_path / "one/train/adapter/adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
