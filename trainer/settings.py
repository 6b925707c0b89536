"""Training settings: typed, read from TOML plus `--key value` overrides, validated before any model loads.

A settings file keeps the trainer's settings under `[train]` (LoRA under `[train.lora]`), the same layout
the resolved settings are saved in (`runs/NAME/config.toml`), so a run's config is also a valid `--config`.
Every mistake becomes a `SettingsError` whose message names the setting and says what to change.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trainer.errors import SettingsError
from trainer.model import ALL_PROJECTIONS

SECTION = "train"


class LoraSettings(BaseModel):
    """The adapter: peft's LoraConfig fields that matter for training."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(4, ge=1, le=4096, description="LoRA rank")
    alpha: float = Field(32.0, gt=0, description="scale is alpha / r")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the adapter's input")
    target_modules: list[str] = Field(default_factory=lambda: list(ALL_PROJECTIONS), min_length=1)
    layers: list[int] | None = Field(
        None, description="decoder layers (0-based) that get adapters; none: all. Adapters only in the top "
        "layers also spare the backward pass through the layers below them"
    )

    @field_validator("layers", mode="before")
    @classmethod
    def _layer_ranges(cls, v: Any) -> Any:
        # `--lora.layers 22-29` or `--lora.layers 0,5,7` arrive as one string.
        if not isinstance(v, str):
            return v
        out: list[Any] = []
        for part in (p.strip() for p in v.split(",") if p.strip()):
            first, dash, last = part.partition("-")
            out += list(range(int(first), int(last) + 1)) if dash and first and last else [part]
        return out

    @field_validator("layers")
    @classmethod
    def _some_layers(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or min(v) < 0):
            raise ValueError("give layer numbers from 0 up (e.g. 22-29), or leave layers out for all layers")
        return sorted(set(v)) if v is not None else None

    @field_validator("target_modules", mode="before")
    @classmethod
    def _split_commas(cls, v: Any) -> Any:
        # `--lora.target_modules q_proj,v_proj` arrives as one string.
        if isinstance(v, str):
            return [s.strip() for s in v.split(",") if s.strip()]
        return v


class TrainSettings(BaseModel):
    """Everything the loop needs to know; defaults follow the tutorial (see configs/gemma-2b-it-lora.toml)."""

    model_config = ConfigDict(extra="forbid")

    # --- model
    model: str = Field("google/gemma-2b-it", min_length=1, description="hub id or local folder")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto", description="auto: bfloat16 on CUDA, float32 on CPU (float16 would need a loss scaler)"
    )
    attention: str = Field("auto", min_length=1, description="packed attention backend (trainer.attention)")
    lora: LoraSettings = Field(default_factory=LoraSettings)
    lora_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="dtype of the adapter weights; auto: the model's dtype, as torchtune does"
    )

    # --- data
    data: str | None = Field(None, description="examples JSONL; default runs/NAME/examples.jsonl")
    max_len: int = Field(1024, ge=8, description="tokens per example; longer ones are truncated")
    eval_fraction: float = Field(0.02, ge=0.0, lt=0.5)
    max_eval_examples: int = Field(256, ge=0, description="cap on the held-out split")
    seed: int = 0

    # --- batch: packed micro-batches of at most `token_budget` tokens, `grad_accum` of them per step
    token_budget: int = Field(2048, ge=8, description="tokens per packed micro-batch")
    grad_accum: int = Field(2, ge=1, description="micro-batches per optimizer step (per GPU)")

    # --- optimisation
    epochs: int = Field(1, ge=1)
    max_steps: int = Field(0, ge=0, description="0: as many steps as the epochs give")
    lr: float = Field(1e-4, gt=0.0, le=1.0)
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0, description="cosine decays to lr * min_lr_ratio")
    warmup_steps: int | None = Field(None, ge=0, description="overrides warmup_ratio when set")
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    adam_beta1: float = Field(0.9, ge=0.0, lt=1.0)
    adam_beta2: float = Field(0.999, ge=0.0, lt=1.0)
    adam_eps: float = Field(1e-8, gt=0.0)
    max_grad_norm: float = Field(1.0, ge=0.0, description="0 disables clipping")
    fused_adamw: Literal["auto", "on", "off"] = Field("auto", description="auto: fused on CUDA")

    # --- speed and memory
    gradient_checkpointing: bool = False
    compile: bool = Field(False, description="torch.compile each decoder layer")
    fused_lora: bool = Field(True, description="without compile: in-place addmm LoRA forward")
    loss_chunk_tokens: int = Field(1024, ge=1, description="supervised positions per LM-head chunk")
    pad_to_multiple: int = Field(1, ge=1, description="pad each packed row to a multiple (fewer shapes to compile)")

    # --- bookkeeping
    eval_every: int = Field(100, ge=0, description="steps between eval losses; 0: only at the end")
    checkpoint_every: int = Field(100, ge=0, description="steps between checkpoints; 0: only at the end")
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(1, ge=1)

    @field_validator("attention")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        from trainer.attention import BACKENDS

        if v != "auto" and v not in BACKENDS:
            raise ValueError(f"unknown attention backend; choose auto or one of {', '.join(BACKENDS)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> TrainSettings:
        if self.token_budget < self.max_len:
            raise ValueError(
                f"token_budget ({self.token_budget}) is smaller than max_len ({self.max_len}), so a "
                f"full-length example fits no micro-batch: raise token_budget or lower max_len"
            )
        return self

    def warmup_for(self, total_steps: int) -> int:
        """Warm-up steps for a run of `total_steps` (HF's rule: explicit steps, else ceil(ratio * total))."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        return math.ceil(total_steps * self.warmup_ratio)


# Settings that may change between a checkpoint and its resume without changing the loss trajectory.
RESUME_SAFE = frozenset(
    {"eval_every", "checkpoint_every", "keep_checkpoints", "log_every", "compile", "gradient_checkpointing",
     "data", "attention", "loss_chunk_tokens", "pad_to_multiple", "fused_lora"}
)


def trajectory_settings(settings: TrainSettings) -> dict[str, Any]:
    """The settings a resumed run must share with its checkpoint (plain JSON types)."""
    return {k: v for k, v in settings.model_dump(mode="json").items() if k not in RESUME_SAFE}


# --------------------------------------------------------------------------------------------------
# Command-line overrides: `--lr 2e-4 --lora.r 8 --grad-accum 4 --compile` (values are TOML literals).


def parse_overrides(tokens: list[str]) -> dict[str, Any]:
    """Turn `--key value` pairs into a nested dict; a dotted key reaches a sub-table (`--lora.r 8`)."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or len(tok) == 2:
            raise SettingsError(f"unexpected argument {tok!r}: overrides look like --key value (e.g. --lr 2e-4)")
        key, eq, raw = tok[2:].partition("=")
        if not eq:
            # A bare flag (`--compile`) is true; otherwise the next token is the value.
            if i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                raw = tokens[i + 1]
                i += 1
            else:
                raw = "true"
        i += 1
        path = [part.replace("-", "_") for part in key.split(".")]
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SettingsError(f"--{key}: {part} is a value, not a table")
        node[path[-1]] = _parse_value(raw)
    return out


def _parse_value(raw: str) -> Any:
    """A TOML literal (`8`, `2e-4`, `true`, `["q_proj"]`), else the text itself."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_toml_section(path: Path) -> dict[str, Any]:
    """The `[train]` table of a settings file."""
    if not path.is_file():
        raise SettingsError(f"settings file {path} does not exist: pass an existing --config file")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"{path} is not valid TOML ({e}): fix the file") from e
    if SECTION not in doc:
        raise SettingsError(f"{path} has no [{SECTION}] section: put the trainer's settings under [{SECTION}]")
    section = doc[SECTION]
    if not isinstance(section, dict):
        raise SettingsError(f"{path}: [{SECTION}] must be a table")
    return section


def load_settings(config: Path | None = None, overrides: dict[str, Any] | None = None, *,
                  base: TrainSettings | None = None, given_as: str = "the command line") -> TrainSettings:
    """Defaults (or `base`) <- the `[train]` table of `config` <- `overrides`, validated. `given_as`
    names where the overrides came from in an error (the command line, or the Python API's call)."""
    raw: dict[str, Any] = base.model_dump() if base is not None else {}
    raw = _deep_merge(raw, read_toml_section(config) if config is not None else {})
    raw = _deep_merge(raw, overrides or {})
    where = f"{config} or {given_as}" if config is not None else given_as
    try:
        return TrainSettings.model_validate(raw)
    except ValidationError as e:
        raise SettingsError(_explain(e, where)) from e


def _explain(e: ValidationError, where: str) -> str:
    """One line per problem: `[train] lora.r: ... (got 0)`, with a suggestion for unknown names."""
    lines = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        if err["type"] == "extra_forbidden":
            known = _known_keys(err.get("loc", ()))
            near = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; known settings: {', '.join(sorted(known))}"
            lines.append(f"[{SECTION}] unknown setting {loc!r} in {where}{hint}")
            continue
        msg = err["msg"].removeprefix("Value error, ")
        got = f" (got {err['input']!r})" if loc and "input" in err and not isinstance(err["input"], dict) else ""
        lines.append(f"[{SECTION}] {loc + ': ' if loc else ''}{msg}{got}")
    return "; ".join(lines)


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = LoraSettings if len(loc) > 1 and loc[0] == "lora" else TrainSettings
    return list(model.model_fields)
