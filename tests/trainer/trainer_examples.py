"""Random instruction examples (Korean and English words) written as examples.jsonl, for the loop's tests."""

from __future__ import annotations

import random
from pathlib import Path

from schemas import Example, write_jsonl

WORDS = "안녕하세요 서울 파이썬 model learning data 바다 the quick brown fox 김치찌개 answer question".split()


def write_examples(
    path: Path, n: int, seed: int = 0, *, instruction_words: tuple[int, int] = (2, 10),
    output_words: tuple[int, int] = (2, 25),
) -> Path:
    """n examples whose instruction and output have a random number of words in the given ranges."""
    rng = random.Random(seed)
    write_jsonl(path, [
        Example(id=f"ex{i}", instruction=" ".join(rng.choices(WORDS, k=rng.randint(*instruction_words))),
                output=" ".join(rng.choices(WORDS, k=rng.randint(*output_words))))
        for i in range(n)
    ])
    return path
