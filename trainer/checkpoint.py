"""Checkpoints that survive a kill at any moment, and the adapter folder in peft's format.

    runs/NAME/train/checkpoints/step-000040/
        adapter/adapter_config.json, adapter_model.safetensors    peft's format (PeftModel.from_pretrained, vLLM)
        optimizer.pt, scheduler.pt                                 their state_dicts
        rng.pt                                                     python/numpy/torch/cuda RNG states, one per rank
        state.json                                                 data position + what the run must match

Everything is written into a hidden temp folder that is renamed into place at the end; a rename is
atomic, so a folder named `step-*` is always complete and a kill mid-write leaves only a temp folder,
which the next run deletes. The newest complete checkpoint is the one a rerun resumes from.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from trainer.errors import TrainError

if TYPE_CHECKING:
    from trainer.settings import TrainSettings

PREFIX = "step-"
TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class DataPosition:
    """Where the data stream stands after `step` optimizer steps: the next step reads micro-batch
    `micro_batch` of epoch `epoch`'s plan (both derived from `step`; stored to check and to read)."""

    step: int
    epoch: int
    micro_batch: int


# --- RNG ------------------------------------------------------------------------------------------


def capture_rng() -> dict[str, Any]:
    """Every random stream the step may draw from (LoRA dropout draws from torch's)."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    try:
        import numpy as np
    except ImportError:  # numpy is optional for us; record that it was absent
        state["numpy"] = None
    else:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state["numpy"] = (kind, keys.tolist(), int(pos), int(has_gauss), float(gauss))
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(_as_tuples(state["python"]))
    torch.set_rng_state(state["torch"])
    if state.get("numpy") is not None:
        import numpy as np

        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(x: Any) -> Any:
    # random.setstate wants tuples all the way down; serialisation may have turned them into lists.
    return tuple(_as_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


# --- writing --------------------------------------------------------------------------------------


def _fsync_tree(folder: Path) -> None:
    """Flush every file under `folder`, then the folders, so the rename publishes durable data."""
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
    for d in [*sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True), folder]:
        _fsync_dir(d)


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_dir(tmp: Path, final: Path) -> None:
    """Rename a finished temp folder to `final`, replacing an older `final` if there is one."""
    _fsync_tree(tmp)
    old = None
    if final.exists():
        # rename() cannot replace a non-empty folder: move the old one aside first. If a kill lands
        # between the two renames, `final` is missing and the previous checkpoint is the latest.
        old = final.with_name(f"{TMP_PREFIX}old-{final.name}-{os.getpid()}")
        os.rename(final, old)
    os.rename(tmp, final)
    _fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def save_adapter(model: torch.nn.Module, out_dir: Path) -> Path:
    """Write the adapter in peft's format to `out_dir` (atomically): adapter_config.json + safetensors."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f"{TMP_PREFIX}{out_dir.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    publish_dir(tmp, out_dir)
    return out_dir


def save_checkpoint(
    root: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    position: DataPosition,
    rng_states: list[dict[str, Any]],
    meta: dict[str, Any],
    keep: int,
) -> Path:
    """Write checkpoint `step-<position.step>` under `root` atomically; keep the newest `keep` ones."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{position.step:06d}"
    tmp = root / f"{TMP_PREFIX}{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save_pretrained(tmp / "adapter", safe_serialization=True)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(rng_states, tmp / "rng.pt")
    state = {"position": asdict(position), **meta}
    (tmp / "state.json").write_text(json.dumps(state, indent=2), encoding="utf-8")
    publish_dir(tmp, final)
    for stale in list_checkpoints(root)[:-keep]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def remove_partial(root: Path) -> None:
    """Delete temp folders a killed run left behind (they are never read)."""
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(TMP_PREFIX):
                shutil.rmtree(p, ignore_errors=True)


# --- reading --------------------------------------------------------------------------------------


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under `root`, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def latest_checkpoint(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def read_state(path: Path) -> dict[str, Any]:
    return json.loads((path / "state.json").read_text(encoding="utf-8"))


def load_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[DataPosition, list[dict[str, Any]], dict[str, Any]]:
    """Load adapter weights, optimizer and scheduler state in place; return (position, rng states, meta)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(path / "adapter" / "adapter_model.safetensors"))
    result = set_peft_model_state_dict(model, weights)
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise RuntimeError(f"{path}: the checkpoint's adapter has weights this model lacks: {unexpected[:3]}")
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    rng_states = torch.load(path / "rng.pt", weights_only=False)  # our own file: tuples of ints and tensors
    state = read_state(path)
    position = DataPosition(**state.pop("position"))
    return position, rng_states, state


# --------------------------------------------------------------------------------------------------
# Resuming: a checkpoint must come from the same settings


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_can_resume(settings: TrainSettings, run_dir: Path) -> None:
    """If the run has a checkpoint, it must come from the same settings (those that change the losses)."""
    from schemas import RunFolder
    from trainer.settings import trajectory_settings

    ckpt = latest_checkpoint(RunFolder(run_dir).checkpoints)
    if ckpt is None:
        return
    then = _flatten(read_state(ckpt).get("settings", {}))
    now = _flatten(trajectory_settings(settings))
    diffs = [k for k in sorted(then.keys() | now.keys()) if then.get(k) != now.get(k)]
    if diffs:
        was = ", ".join(f"{k}={then.get(k)!r}" for k in diffs)
        asks = ", ".join(f"{k}={now.get(k)!r}" for k in diffs)
        raise TrainError(
            f"{ckpt} was written with {was}, but this command asks for {asks}: rerun with the run's own "
            f"settings to continue it, or start over in a new --run folder (or delete {ckpt.parent})"
        )
