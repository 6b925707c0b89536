"""Suite-wide: TEST_ORDER_SEED=N runs the tests in a random order (modules shuffled, and the tests
inside each module), the same order for the same N; bench/test_suite.py's busy runs use it to find tests that
lean on the order they run in."""

from __future__ import annotations

import os
import random

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    seed = os.environ.get("TEST_ORDER_SEED")
    if not seed:
        return
    rng = random.Random(seed)
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    groups = list(modules.values())
    rng.shuffle(groups)
    for group in groups:
        rng.shuffle(group)
    items[:] = [item for group in groups for item in group]


def pytest_report_header(config: pytest.Config) -> str | None:
    seed = os.environ.get("TEST_ORDER_SEED")
    return f"test order: shuffled with TEST_ORDER_SEED={seed}" if seed else None
