"""The training loop: setup -> train -> cleanup, in one file to read top to bottom.

After nanoGPT's train.py and torchtune's LoRA recipe: no trainer framework, every step written out.

One optimizer step, on each GPU:

    grad_accum micro-batches; each is ONE packed row, input_ids [1, T] with T <= token_budget, holding
    whole examples whose attention never crosses (trainer.packing, trainer.attention)
    for each micro-batch:
        loss_sum = sum over its supervised tokens of -log p(target)           (trainer.loss, chunked LM head)
        (loss_sum / N).backward()    N = supervised tokens of the WHOLE step: every micro-batch, every GPU
    sum the LoRA gradients over GPUs, clip their norm, AdamW, advance the LR schedule

Dividing by the step's N gives the gradient of the mean loss over the step's tokens. A mean of
micro-batch means would weigh a token in a half-empty micro-batch more than one in a full one.

Files (rank 0 writes them): runs/NAME/config.toml [train], and under runs/NAME/train/: metrics.jsonl,
loss.png, adapter/ (peft format), checkpoints/step-NNNNNN/ (see trainer.checkpoint). Rerunning the same
command resumes from the newest checkpoint at the same step, with the same data order and RNG state.

Several GPUs: `torchrun --standalone --nproc-per-node G -m trainer -- train --run runs/NAME ...` (the
`--` keeps torchrun from reading our --run as its --run-path). Every rank builds the same plan and takes
every G-th micro-batch of each step. LoRA gradients are a few MB, so rather than wrapping the model
in DistributedDataParallel (whose bucketing, no_sync and compile interplay buys nothing here) each step
ends with one all-reduce of all LoRA gradients flattened into one buffer.

Beside it: the data (trainer.data: read, encode, split), the plan of steps (trainer.packing: micro-
batches, steps, the position to resume from), the model's setup (trainer.model: LoRA, packed attention,
speed options) and the resume check (trainer.checkpoint). The step-level functions (plan_steps, the
speed options, build_optimizer, build_scheduler, train_step) import neither pydantic nor our records,
so bench/train_gpu.py can use them on a machine that has only torch, transformers and peft; `train()`
imports the rest when called. The command line is trainer/commands/train.py (over trainer/training.py);
the process group, device and SIGTERM plumbing is trainer/runtime.py.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from trainer.checkpoint import (
    check_can_resume,
    latest_checkpoint,
    load_checkpoint,
    read_state,
    remove_partial,
    restore_rng,
    save_adapter,
    save_checkpoint,
)
from trainer.errors import TrainError
from trainer.gguf_model import record_model
from trainer.loss import supervised_loss_sum
from trainer.metrics import (
    MetricsLog,
    Progress,
    ProgressBar,
    flops_per_token,
    peak_flops,
    peak_memory_gib,
    plot_losses,
)
from trainer.model import load_tokenizer, setup_model
from trainer.packing import (
    PackedBatch,
    PlannedStep,
    collate,
    plan_microbatches,
    plan_steps,
    position_after,
    supervised_count,
)
from trainer.runtime import (
    StopFlag,
    broadcast_from_main,
    gather_rng_states,
    init_distributed,
    leave_distributed,
    resolve_device,
    resolve_dtype,
)

if TYPE_CHECKING:
    from trainer.settings import TrainSettings

LossFn = Callable[[torch.nn.Module, PackedBatch, int], tuple[torch.Tensor, int]]

PLOT_EVERY_S = 60.0  # loss.png is redrawn with a checkpoint at most this often (and always at the end)


# ==================================================================================================
# Optimisation
# ==================================================================================================


def build_optimizer(
    params: list[torch.nn.Parameter],
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    fused: str = "auto",
    device: torch.device,
) -> torch.optim.AdamW:
    """AdamW over the LoRA weights; fused (one kernel for all parameters) on CUDA unless told otherwise."""
    use_fused = device.type == "cuda" if fused == "auto" else fused == "on"
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=use_fused)


def lr_multiplier(step: int, *, warmup: int, total: int, kind: str = "cosine", min_ratio: float = 0.0) -> float:
    """The LR factor for optimizer step `step` (0-based): linear warm-up from 0, then cosine to min_ratio
    at `total` (HF's get_cosine_schedule_with_warmup when min_ratio = 0)."""
    if step < warmup:
        return step / max(1, warmup)
    if kind == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, *, warmup: int, total: int, kind: str = "cosine", min_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        return lr_multiplier(step, warmup=warmup, total=total, kind=kind, min_ratio=min_ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def all_reduce_gradients(params: Sequence[torch.nn.Parameter]) -> None:
    """Sum the gradients over ranks in one flat buffer (each rank's are already divided by the global N)."""
    grads = []
    for p in params:
        if p.grad is None:  # every rank must send the same layout
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def train_step(
    model: torch.nn.Module,
    batches: Sequence[PackedBatch],
    *,
    n_supervised: int,
    params: Sequence[torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    max_grad_norm: float,
    chunk_tokens: int,
    world_size: int = 1,
    loss_fn: LossFn | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step over this rank's micro-batches (already on the device).

    n_supervised: supervised tokens of the whole step on all ranks. Returns (this rank's summed token
    losses, the gradient norm before clipping) as device tensors: reading them is the caller's host sync.
    """
    if not batches:
        raise ValueError("a step needs at least one micro-batch")
    loss_fn = loss_fn or supervised_loss_sum
    total: torch.Tensor | None = None
    for batch in batches:
        loss_sum, _ = loss_fn(model, batch, chunk_tokens)  # scalar: summed -log p over the batch's labels
        (loss_sum / n_supervised).backward()  # LoRA .grad accumulates across micro-batches
        total = loss_sum.detach().float() if total is None else total + loss_sum.detach().float()
    if world_size > 1:
        all_reduce_gradients(params)
    # max_norm=inf still returns the norm (for the metrics) and leaves the gradients as they are.
    grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm if max_grad_norm > 0 else math.inf)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return total, grad_norm


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    batches: Sequence[PackedBatch],
    *,
    device: torch.device,
    chunk_tokens: int,
    world_size: int = 1,
    loss_fn: LossFn | None = None,
) -> float | None:
    """Mean loss per supervised token over the held-out micro-batches of all ranks (None if there are none)."""
    loss_fn = loss_fn or supervised_loss_sum
    model.eval()
    sums = torch.zeros(2, dtype=torch.float64, device=device)  # [loss sum, supervised tokens]
    for batch in batches:
        loss_sum, n = loss_fn(model, batch.to(device), chunk_tokens)
        sums[0] += loss_sum.double()
        sums[1] += n
    if world_size > 1:
        dist.all_reduce(sums)
    model.train()
    return (sums[0] / sums[1]).item() if sums[1] > 0 else None


# ==================================================================================================
# The run: setup -> train -> cleanup
# ==================================================================================================


@dataclass
class TrainResult:
    step: int  # optimizer steps done, this run and earlier ones
    total_steps: int
    losses: dict[int, float] = field(default_factory=dict)  # step -> loss, for the steps run now
    adapter_dir: Path | None = None  # set once the run is finished

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps


def reads_late(device: torch.device) -> bool:
    """Whether the loop reads a step's results only after launching the next (devices that run queued work)."""
    return device.type != "cpu"


@dataclass(frozen=True)
class LaunchedStep:
    """An optimizer step whose work is queued on the device; its results are device tensors until read."""

    step: int  # the step number once done (1-based)
    planned: PlannedStep
    loss_sum: torch.Tensor
    grad_norm: torch.Tensor
    n_supervised: int
    lr: float


def train(
    settings: TrainSettings,
    run_dir: Path,
    *,
    data_path: Path | None = None,
    max_steps_this_run: int | None = None,
    on_setup: Callable[[torch.nn.Module], None] | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    progress_stream: Any = None,
    progress_bar: bool = False,
) -> TrainResult:
    """Train (or resume training) the run in `run_dir`. `max_steps_this_run` stops after that many steps
    with a checkpoint, as a kill would but cleanly; `on_setup(model)` and `on_step(record)` are hooks.
    `progress_bar`: the status as a tqdm bar (in a notebook) instead of the line on `progress_stream`."""
    # Imported here, not at the top: bench/train_gpu.py uses this module's parts on a machine that has
    # only torch, transformers, peft and accelerate.
    from schemas import RunFolder
    from trainer.data import data_fingerprint, prepare_data, read_examples
    from trainer.settings import trajectory_settings

    # ---------------------------------------------------------------------------------- setup
    info = init_distributed(settings.device)
    device = resolve_device(settings.device, info)
    dtype = resolve_dtype(settings.dtype, device)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
    folder = RunFolder(run_dir)
    ckpt_root = folder.checkpoints
    check_can_resume(settings, run_dir)  # before any loading: a mismatch is the user's to resolve

    examples = read_examples(data_path or folder.examples)  # before any model loads
    tokenizer = load_tokenizer(settings.model)
    if info.is_main:
        record_model(folder, "train", settings.model)
    data = prepare_data(settings, examples, tokenizer)
    lengths = [len(ex.input_ids) for ex in data.train]
    supervised = [supervised_count(ex) for ex in data.train]
    steps, skipped = plan_steps(
        lengths,
        token_budget=settings.token_budget,
        grad_accum=settings.grad_accum,
        world_size=info.world_size,
        epochs=settings.epochs,
        seed=settings.seed,
    )
    total = min(len(steps), settings.max_steps) if settings.max_steps else len(steps)
    if total == 0:
        raise TrainError(
            f"{len(data.train)} training examples make no full step for {info.world_size} GPU(s): add examples"
        )
    warmup = settings.warmup_for(total)
    if warmup >= total:
        if settings.warmup_steps is not None:
            raise TrainError(
                f"warmup_steps ({warmup}) is not shorter than the run ({total} steps): lower warmup_steps"
            )
        warmup = total - 1  # a ratio rounded up on a very short run: keep one step at full rate
    meta = {
        "settings": trajectory_settings(settings),
        "data": data_fingerprint(data.train),
        "world_size": info.world_size,
        "total_steps": total,
    }

    if info.is_main:
        remove_partial(ckpt_root)
    latest = latest_checkpoint(ckpt_root)
    if latest is not None:
        state = read_state(latest)
        if state.get("data") != meta["data"]:
            raise TrainError(
                f"the training examples differ from those {latest} was trained on: restore the data, or "
                f"start over in a new --run folder (or delete {ckpt_root})"
            )
        if state.get("world_size") != info.world_size:
            raise TrainError(
                f"{latest} was written by {state.get('world_size')} process(es), this run has {info.world_size}: "
                f"resume with torchrun --nproc-per-node {state.get('world_size')}"
            )

    model, backend, n_matmul = setup_model(settings, device, dtype)
    params = [p for p in model.parameters() if p.requires_grad]
    broadcast_from_main(params, info)
    optimizer = build_optimizer(
        params,
        lr=settings.lr,
        betas=(settings.adam_beta1, settings.adam_beta2),
        eps=settings.adam_eps,
        weight_decay=settings.weight_decay,
        fused=settings.fused_adamw,
        device=device,
    )
    scheduler = build_scheduler(
        optimizer, warmup=warmup, total=total, kind=settings.lr_schedule, min_ratio=settings.min_lr_ratio
    )
    # Each rank draws its own dropout masks.
    random.seed(settings.seed + info.rank)
    torch.manual_seed(settings.seed + 1 + info.rank)
    start = 0
    if latest is not None:
        position, rng_states, _ = load_checkpoint(latest, model=model, optimizer=optimizer, scheduler=scheduler)
        if position != position_after(steps, position.step, settings.epochs):
            raise TrainError(f"{latest} stands at {position}, which is not where this run's data plan puts it")
        restore_rng(rng_states[info.rank])
        start = position.step
    if on_setup is not None:
        on_setup(model)

    # Held-out micro-batches: planned and collated once, moved to the device at each evaluation.
    eval_plan = plan_microbatches([len(ex.input_ids) for ex in data.eval], settings.token_budget) if data.eval else []
    eval_batches = [
        collate([data.eval[i] for i in mb], pad_to_multiple=settings.pad_to_multiple, pad_id=data.pad_id)
        for mb in eval_plan[info.rank :: info.world_size]
    ]
    peak = peak_flops(device, dtype)
    flops_token = flops_per_token(n_matmul)
    metrics = MetricsLog(folder.metrics, resume_step=start) if info.is_main else None
    progress = (ProgressBar if progress_bar else Progress)(total, start, progress_stream) if info.is_main else None
    if info.is_main:
        print(
            f"training {settings.model} on {len(data.train)} examples ({skipped} skipped at epoch ends, "
            f"{len(data.eval)} held out) | {total} steps, resuming at {start} | {device} {dtype} | "
            f"attention {backend} | N={n_matmul:,} matmul weights",
            file=progress.stream if progress else sys.stderr,
        )

    # ---------------------------------------------------------------------------------- train
    # Reading a step's loss (.item()) waits for the GPU. Done right after the step, it would leave the GPU idle
    # while the host prepares and launches the next one, so on a GPU an ordinary step is read one step late:
    # after the next step is launched and the GPU has its work queued. Steps that evaluate, checkpoint or
    # stop are read at once, before anything else is launched: what they save is exactly the state after
    # them. (On a CPU a step runs as it is launched: there is nothing to overlap, so every step is read at
    # once, and each step's time is its own.)
    read_late = reads_late(device)
    result = TrainResult(step=start, total_steps=total)
    stop_at = total if max_steps_this_run is None else min(total, start + max_steps_this_run)
    t_last = time.perf_counter()
    last_plot = time.monotonic()

    def due(step: int, every: int) -> bool:
        return bool(every) and step % every == 0

    def launch(step_index: int) -> LaunchedStep:
        planned = steps[step_index]
        # This rank's micro-batches: [1, T] rows, pinned and copied to the device without blocking.
        batches = [
            collate(
                [data.train[i] for i in mb], pad_to_multiple=settings.pad_to_multiple, pad_id=data.pad_id
            ).to(device)
            for mb in planned.micro_batches[info.rank :: info.world_size]
        ]
        # N of the whole step, all ranks' micro-batches, counted on the host: every rank divides by it.
        n_supervised = max(1, sum(supervised[i] for mb in planned.micro_batches for i in mb))
        lr = optimizer.param_groups[0]["lr"]  # the rate this step uses (the schedule advances after it)
        loss_sum, grad_norm = train_step(
            model,
            batches,
            n_supervised=n_supervised,
            params=params,
            optimizer=optimizer,
            scheduler=scheduler,
            max_grad_norm=settings.max_grad_norm,
            chunk_tokens=settings.loss_chunk_tokens,
            world_size=info.world_size,
        )
        if info.world_size > 1:
            dist.all_reduce(loss_sum)
        return LaunchedStep(step_index + 1, planned, loss_sum, grad_norm, n_supervised, lr)

    def finish(done: LaunchedStep) -> None:
        """Read a launched step's results, evaluate if due, log them."""
        nonlocal t_last
        loss = done.loss_sum.item() / done.n_supervised  # waits for this step, not for those launched after it
        now = time.perf_counter()
        step = done.step
        tokens = sum(lengths[i] for mb in done.planned.micro_batches for i in mb)  # real tokens, all ranks
        tokens_per_s = tokens / max(now - t_last, 1e-9)
        t_last = now
        record: dict[str, Any] = {
            "step": step,
            "epoch": done.planned.epoch,
            "loss": loss,
            "lr": done.lr,
            "grad_norm": done.grad_norm.item(),
            "tokens": tokens,
            "supervised_tokens": done.n_supervised,
            "tokens_per_s": tokens_per_s,
            "mfu": tokens_per_s * flops_token / (peak * info.world_size) if peak else None,
            "peak_gib": peak_memory_gib(device),
        }
        if eval_batches and (due(step, settings.eval_every) or step == total):
            record["eval_loss"] = evaluate(
                model, eval_batches, device=device, chunk_tokens=settings.loss_chunk_tokens,
                world_size=info.world_size,
            )
        result.losses[step] = loss
        result.step = step
        if metrics is not None and (step % settings.log_every == 0 or step == stop_at):
            metrics.log(record)
            progress.update(step, record)
        if on_step is not None:
            on_step(record)

    with StopFlag() as stop:
        pending: LaunchedStep | None = None
        stop_vote: torch.Tensor | None = None  # several ranks: the stop requests reduced one step ago
        for step_index in range(start, stop_at):
            launched = launch(step_index)
            if pending is not None:
                finish(pending)  # the step before: the GPU is busy with `launched` meanwhile
            pending = launched
            step = launched.step
            stop_agreed = stop.requested
            if info.world_size > 1:
                # All ranks must stop after the same step, or the next collective hangs. Each step's vote is
                # reduced now and read at the next step, once that one is queued: agreeing waits for no GPU.
                stop_agreed = stop_vote is not None and bool(stop_vote.item())
                stop_vote = torch.tensor([float(stop.requested)], device=device)
                dist.all_reduce(stop_vote, op=dist.ReduceOp.MAX)
            stopping = step == stop_at or stop_agreed
            checkpointing = due(step, settings.checkpoint_every) or stopping
            evaluating = bool(eval_batches) and (due(step, settings.eval_every) or step == total)
            if read_late and not (checkpointing or evaluating):
                continue
            finish(launched)
            pending = None
            if stop.requested and info.world_size == 1:  # a SIGTERM while `launched` was read (ranks: next step)
                stopping = checkpointing = True
            if checkpointing:
                rng_states = gather_rng_states(info)
                if info.is_main:
                    save_checkpoint(
                        ckpt_root,
                        model=model,
                        optimizer=optimizer,
                        scheduler=scheduler,
                        position=position_after(steps, step, settings.epochs),
                        rng_states=rng_states,
                        meta=meta,
                        keep=settings.keep_checkpoints,
                    )
                    # Redraw loss.png with checkpoints, at most every PLOT_EVERY_S (drawing takes ~0.2 s).
                    if stopping or time.monotonic() - last_plot >= PLOT_EVERY_S:
                        plot_losses(folder.metrics, folder.loss_chart)
                        last_plot = time.monotonic()
            t_last = time.perf_counter()  # evaluation and checkpoints do not count as training time
            if stopping:
                break

    # ---------------------------------------------------------------------------------- cleanup
    if progress is not None:
        progress.close()
    if metrics is not None:
        metrics.close()
    if result.finished and info.is_main:  # (loss.png was drawn with the last checkpoint)
        result.adapter_dir = save_adapter(model, folder.adapter)
    elif result.finished:
        result.adapter_dir = folder.adapter
    leave_distributed(info)
    return result


__all__ = ["TrainError", "TrainResult", "build_optimizer", "build_scheduler", "lr_multiplier", "train", "train_step"]
