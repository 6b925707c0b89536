"""Where the loop runs: this process's place under torchrun, the device and dtype, and the
process-group plumbing around the loop (joining and leaving it, gathering RNG states, SIGTERM).

Like the loop's step functions, it needs nothing beyond torch at import: bench/train_gpu.py runs
them on a machine without pydantic.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from trainer.checkpoint import capture_rng
from trainer.errors import TrainError

if TYPE_CHECKING:
    from trainer.settings import TrainSettings


@dataclass(frozen=True)
class DistInfo:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_setting: str) -> DistInfo:
    """Join torchrun's process group when WORLD_SIZE > 1 (NCCL on GPUs, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = device_setting != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def resolve_device(setting: str, info: DistInfo = DistInfo()) -> torch.device:
    if setting == "cpu" or (setting == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise TrainError("device = 'cuda' but no CUDA GPU is visible: set --device auto (or cpu)")
    return torch.device("cuda", info.local_rank)


def resolve_dtype(setting: str, device: torch.device) -> torch.dtype:
    """auto: bf16 on a GPU (half the memory, tensor cores), fp32 on CPU (bf16 matmuls are slow there)."""
    if setting == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, setting)


def check_runtime(settings: TrainSettings) -> None:
    """What the settings ask of this machine, checked before anything is loaded."""
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise TrainError("this GPU has no bfloat16 support: set --dtype float32")


def broadcast_from_main(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """Every rank starts from rank 0's weights, whatever the ranks' seeds did."""
    if info.world_size > 1:
        for p in params:
            dist.broadcast(p.data, src=0)


def leave_distributed(info: DistInfo) -> None:
    """Wait for every rank (rank 0 may still be saving), then leave the process group."""
    if info.world_size > 1:
        dist.barrier()
        dist.destroy_process_group()


class StopFlag:
    """SIGTERM (a scheduler's pre-emption) asks for a checkpoint after the current step, then a clean exit."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():  # signals reach only the main thread
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def gather_rng_states(info: DistInfo) -> list[dict[str, Any]]:
    state = capture_rng()
    if info.world_size == 1:
        return [state]
    gathered: list[Any] | None = [None] * info.world_size if info.is_main else None
    dist.gather_object(state, gathered, dst=0)
    return gathered or []
