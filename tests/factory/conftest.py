"""Shared fixtures for the factory tests: engines wired to an in-process fake OpenAI API.
Nothing here reaches beyond 127.0.0.1; see engine_fakes.py for the fake itself."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from engine_fakes import TEST_KEY, FakeAPI, settings

from factory.engine import Engine
from factory.ledger import Ledger


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


@pytest.fixture
def make_engine(ledger: Ledger) -> Callable[..., Engine]:
    """make_engine(fake, **settings) -> an Engine on `fake` recording into the test's ledger."""

    def make(fake: FakeAPI, api_key: str = TEST_KEY, **overrides: Any) -> Engine:
        return Engine(settings(**overrides), ledger, api_key=api_key, http_client=fake.client(), progress=False)

    return make
