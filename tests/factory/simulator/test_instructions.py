"""factory.simulator.instructions: fresh tasks stay apart under the near-duplicate check, and the
duplicate_share setting sets the share the check drops."""

from __future__ import annotations

import random

import pytest

from factory.quality import Deduper
from factory.simulator.config import SimConfig, SimConfigError
from factory.simulator.instructions import FAVOURITES, instruction
from factory.simulator.text import MARKER


def _drop_share(lang: str, share: float, n: int) -> float:
    items = [(str(k), f"{MARKER} {instruction(random.Random(k), lang, share)}") for k in range(n)]
    return sum(v.is_dup for v in Deduper().check_and_add_many(items)) / n


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_fresh_tasks_are_not_near_duplicates_of_each_other(lang: str) -> None:
    assert _drop_share(lang, 0.0, 4000) < 0.005


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_duplicate_share_is_what_the_check_drops(lang: str) -> None:
    n = 4000
    # Every favourite's first appearance is new; the rest of the favourites drawn are dropped.
    expected = 0.25 - FAVOURITES / n
    assert abs(_drop_share(lang, 0.25, n) - expected) < 0.03


def test_same_generator_same_task() -> None:
    assert instruction(random.Random(5), "ko", 0.5) == instruction(random.Random(5), "ko", 0.5)
    assert instruction(random.Random(5), "en", 0.0) != instruction(random.Random(6), "en", 0.0)


def test_a_favourite_comes_back_in_other_words() -> None:
    texts = [instruction(random.Random(k), "en", 1.0) for k in range(400)]
    kept = [v for v in Deduper().check_and_add_many(list(zip(map(str, range(400)), texts))) if not v.is_dup]
    assert len(kept) <= FAVOURITES  # each favourite is kept once; its returns are near-duplicates
    assert len(set(texts)) > FAVOURITES  # ... not always word for word


def test_duplicate_share_is_checked() -> None:
    with pytest.raises(SimConfigError, match="duplicate_share"):
        SimConfig(duplicate_share=1.5)
    assert "--duplicate-share" in SimConfig(duplicate_share=0.2).to_cli_args()
