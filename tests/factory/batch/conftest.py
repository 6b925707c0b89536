"""Fixtures of the Batch API tests (the helpers they share are in batch_fakes.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from batch_fakes import CLI_FAST

from factory.__main__ import main


@pytest.fixture
def batch_cli(tmp_path: Path) -> Callable[..., int]:
    """batch_cli(url, *args) runs `python -m factory batch --run tmp/run --base-url url` with fast polling."""

    def run(url: str, *args: str) -> int:
        return main(["batch", "--run", str(tmp_path / "run"), "--base-url", url, *CLI_FAST, *args])

    return run
