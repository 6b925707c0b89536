"""Merging a run's adapter into its base model (`python -m trainer merge`, the API's `trainer.merge`).

The result is a plain transformers model folder (no peft needed to load it) with the tokenizer copied
beside it. The merge itself runs in fp32 on the CPU, W' = W + (alpha / r) * B @ A, so it adds no rounding
of its own; the folder is then saved in the base model's own dtype (bf16 for Gemma) unless --dtype says
otherwise.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from schemas import RunFolder

from trainer.errors import MergeError
from trainer.checkpoint import TMP_PREFIX, publish_dir
from trainer.gguf_model import converted_folder, is_gguf, record_model
from trainer.model import load_model, load_tokenizer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def saved_dtype(name_or_path: str) -> torch.dtype:
    """The dtype the base model's weights were published in (float32 when its config does not say)."""
    from transformers import AutoConfig

    if is_gguf(name_or_path):  # its converted folder says float32: GGUF blocks are dequantised to it
        name_or_path = str(converted_folder(name_or_path))
    try:
        config = AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError):
        return torch.float32
    value: Any = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(value, torch.dtype):
        return value
    return DTYPES.get(str(value).removeprefix("torch."), torch.float32)


def merge_adapter(base: str, adapter_dir: Path, out_dir: Path, *, dtype: torch.dtype | None = None) -> Path:
    """Write base + adapter, merged, to `out_dir` (atomically) with the base's tokenizer; return `out_dir`."""
    from peft import PeftModel

    if not (adapter_dir / "adapter_config.json").is_file():
        raise MergeError(f"no adapter at {adapter_dir} (adapter_config.json missing): train the run first")
    model = load_model(base, device="cpu", dtype=torch.float32)
    tokenizer = load_tokenizer(base)
    merged = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    merged.to(dtype or saved_dtype(base))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f"{TMP_PREFIX}{out_dir.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    publish_dir(tmp, out_dir)
    return out_dir


def merge_run(run: Path, *, model: str | None = None, out: Path | None = None, dtype: torch.dtype | None = None) -> Path:
    """Merge `run`'s adapter (train/adapter) into its base model (`model`, default: [train].model of the
    run's config.toml) and write it to `out` (default: RUN/merged); record it in config.toml."""
    from trainer.settings import load_settings

    base = model
    if base is None:
        config = RunFolder(run).config
        if not config.is_file():
            raise MergeError(f"{config} does not exist: train the run first, or pass --model")
        base = load_settings(config).model
    out = out or RunFolder(run).merged
    adapter = RunFolder(run).adapter
    merge_adapter(base, adapter, out, dtype=dtype)
    record_model(run, "merge", base, adapter=str(adapter), merged=str(out))
    return out
