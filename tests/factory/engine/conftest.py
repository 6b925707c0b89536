"""Fixtures for the engine tests: engines wired to an in-process fake OpenAI API (engine_fakes.py).
The run folder, its ledger and the isolated environment come from tests/factory/conftest.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from engine_fakes import TEST_KEY, FakeAPI, settings

from factory.engine import Engine
from factory.engine.ledger import Ledger


@pytest.fixture
def make_engine(ledger: Ledger) -> Callable[..., Engine]:
    """make_engine(fake, **settings) -> an Engine on `fake` recording into the test's ledger."""

    def make(fake: FakeAPI, api_key: str = TEST_KEY, **overrides: Any) -> Engine:
        return Engine(settings(**overrides), ledger, api_key=api_key, http_client=fake.client(), progress=False)

    return make
