"""Shared fixtures for the factory tests: an isolated environment, a run folder and its ledger.
Nothing here reaches beyond 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from factory.engine.ledger import Ledger


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No real key or endpoint leaks into a test; tiktoken finds no cached file (as on a machine
    without network), so the fallback estimator is what the tests exercise."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path_factory.mktemp("tiktoken-empty")))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture
def ledger(run_dir: Path) -> Iterable[Ledger]:
    with Ledger.for_run(run_dir) as led:
        yield led
