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
