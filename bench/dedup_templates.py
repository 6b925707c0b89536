"""A template stream: instruction texts written the way a model writes an instruction set.

Every text fills one of the Korean or English templates of bench/dedup_corpus.py (an optional
opening clause, a frame, subjects, a Korean sentence ending). Most texts are made from a recent
one, as a model repeats itself within a run:

- a fresh fill of a random template (about 40%);
- a recent text with some of its slots refilled: the same frame about other subjects, anything
  from almost the same to a plain template sibling;
- a recent text rephrased with 1-6 edits: particle, ending, spacing and word changes, inserted
  words, reordered clauses;
- both: slots refilled, then rephrased.

So pair similarities spread over the whole range, with many pairs near every threshold (the
benchmark reports the spread). There is no planted truth: the truth is an exact greedy dedup of
the stream (bench/dedup.py). Recent texts are kept in a bounded window, so a stream of millions
costs little memory to generate.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator

from dedup_corpus import (
    _Base,
    _en_slots,
    _ko_slots,
    _make_base,
    _near_dup,
    _render,
    _template_slots,
)

WINDOW = 5_000  # recent texts a new one can be made from


def _refilled(base: _Base, rng: random.Random, refill: int) -> _Base:
    """`base` with `refill` of its template's slots given new values."""
    fresh = _en_slots(rng) if base.lang == "en" else _ko_slots(rng)
    slots = dict(base.slots)
    for name in rng.sample(_template_slots(base), refill):
        slots[name] = fresh[name]
    text, body = _render(base.lang, base.template, slots, base.ending)
    return _Base(base.lang, base.template, slots, base.ending, text, body)


def template_stream(n: int, seed: int = 0, korean_share: float = 0.5, fresh_share: float = 0.4) -> Iterator[tuple[str, str]]:
    """`n` (id, text) items; ids "ko-K" / "en-K" for item K."""
    rng = random.Random(seed)
    recent: deque[_Base] = deque(maxlen=WINDOW)
    for k in range(n):
        roll = rng.random()
        if not recent or roll < fresh_share:
            base = _make_base("ko" if rng.random() < korean_share else "en", rng)
            text = base.text
        else:
            source = recent[rng.randrange(len(recent))]
            how = rng.random()
            if how < 0.4:
                base = source
                text = _near_dup(source, rng, rng.randint(1, 6))
            else:
                slots = _template_slots(source)
                base = _refilled(source, rng, rng.randint(1, max(1, len(slots) - 1)))
                text = base.text if how < 0.8 else _near_dup(base, rng, rng.randint(1, 3))
        recent.append(base)
        yield f"{base.lang}-{k}", text
