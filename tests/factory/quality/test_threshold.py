"""The threshold, exactly: a pair at it is a duplicate, just below it is not; pairs near every
threshold are found (recall against a brute-force exact greedy dedup); texts that break the
usual path (lone surrogates, emoji only) get verdicts or named rejections, never a crash."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from factory.commands import importer
from factory.quality import Deduper, DedupSettings, normalize, shingle_sets
from factory.quality.filters import REASON_ENCODING, REASON_NO_TEXT, check, encoding_rejection
from schemas import Example, Rejected, read_jsonl

# 202 distinct CJK ideographs (letters to the normaliser, unchanged by NFKC and NFD): 200
# distinct 3-character shingles; a prefix of n + 2 of them has n, all shared.
_CHARS = "".join(chr(0x4E00 + 7 * k) for k in range(202))
INDEXES = ["bands", "prefix", "datasketch"]


def test_the_synthetic_sets_are_what_the_tests_assume() -> None:
    a, b = shingle_sets([_CHARS, _CHARS[:112]], 3)
    assert len(a) == 200 and len(b) == 110 and set(b.tolist()) <= set(a.tolist())


@pytest.mark.parametrize("index", INDEXES)
def test_a_pair_exactly_at_the_threshold_is_a_duplicate(index: str) -> None:
    # 110 / 200 = 0.55 exactly; in floats 0.55 * 200 is 110.00000000000001, which once kept it.
    d = Deduper(DedupSettings(threshold=0.55, index=index))
    d.check_and_add("a", _CHARS)
    verdict = d.check_and_add("b", _CHARS[:112])
    assert verdict.is_dup and verdict.dup_of == "a" and verdict.similarity == 0.55


@pytest.mark.parametrize("index", INDEXES)
def test_a_pair_just_below_the_threshold_is_kept(index: str) -> None:
    d = Deduper(DedupSettings(threshold=0.55, index=index))
    d.check_and_add("a", _CHARS)
    verdict = d.check_and_add("b", _CHARS[:111])  # 109 / 200 = 0.545
    assert not verdict.is_dup
    assert len(d) == 2


def test_threshold_as_a_fraction() -> None:
    assert DedupSettings(threshold=0.55).ratio() == (11, 20)
    assert DedupSettings(threshold=0.7).ratio() == (7, 10)
    assert DedupSettings(threshold=1.0).ratio() == (1, 1)


# -- recall near every threshold -------------------------------------------------------------

_SYLLABLES = [chr(0xAC00 + 97 * k) for k in range(110)]
_LATIN = "abcdefghijklmnopqrstuvwxyz"


def _word(rng: random.Random, korean: bool) -> str:
    if korean:
        return "".join(rng.choices(_SYLLABLES, k=rng.randint(1, 3)))
    return "".join(rng.choices(_LATIN, k=rng.randint(3, 8)))


def template_stream(n: int, seed: int) -> list[tuple[str, str]]:
    """Templates of fixed words with slots; each text a fill of a recent one's template with
    some slots refilled, some words respaced or dropped: similarities over the whole range."""
    rng = random.Random(seed)
    made: list[list[str]] = []
    items = []
    for k in range(n):
        korean = rng.random() < 0.5
        if not made or rng.random() < 0.3:
            words = [_word(rng, korean) for _ in range(rng.randint(4, 12))]
        else:
            words = list(made[rng.randrange(max(0, len(made) - 50), len(made))])
            for _ in range(rng.randint(0, len(words) // 2 + 1)):
                i = rng.randrange(len(words))
                op = rng.random()
                if op < 0.6:
                    words[i] = _word(rng, korean)
                elif op < 0.8 and len(words) > 2:
                    del words[i]
                else:
                    words.insert(i, _word(rng, korean))
        made.append(words)
        sep = "" if korean and rng.random() < 0.2 else " "
        items.append((f"t{k}", sep.join(words) + rng.choice(["?", ".", "!", ""])))
    return items


def exact_greedy(texts: list[str], threshold: float, shingle_size: int = 3) -> list[bool]:
    """The reference: each text against every kept one, Python sets, rational comparison."""
    num, den = DedupSettings(threshold=threshold).ratio()
    sets = [set(s.tolist()) for s in shingle_sets(texts, shingle_size)]
    kept: list[set[int]] = []
    dropped = []
    for s in sets:
        dup = bool(s) and any(len(s & k) * den >= num * len(s | k) for k in kept)
        dropped.append(dup)
        if not dup and s:
            kept.append(s)
    return dropped


@pytest.mark.parametrize("threshold", [0.5, 0.55, 0.6, 0.7, 0.8])
@pytest.mark.parametrize("index", ["bands", "prefix"])
def test_recall_near_the_threshold(threshold: float, index: str) -> None:
    items = template_stream(800, seed=int(threshold * 100))
    texts = [t for _, t in items]
    sets = shingle_sets(texts, 3)
    # The stream has pairs near the threshold: a tenth of a unit around it, both sides.
    py = [set(s.tolist()) for s in sets]
    near = sum(1 for i in range(len(py)) for j in range(max(0, i - 60), i)
               if abs(len(py[i] & py[j]) / max(1, len(py[i] | py[j])) - threshold) < 0.05)
    assert near >= 50
    reference = exact_greedy(texts, threshold)
    verdicts = Deduper(DedupSettings(threshold=threshold, index=index), batch_size=256).check_and_add_many(items)
    ours = [v.is_dup for v in verdicts]
    both = sum(a and b for a, b in zip(ours, reference))
    assert sum(reference) >= 80
    recall, precision = both / sum(reference), both / max(1, sum(ours))
    if index == "prefix":  # exact by construction
        assert ours == reference
    assert recall >= 0.98 and precision >= 0.98
    # Every drop is right: its similarity to a text kept before it is at or above the threshold.
    position = {item_id: k for k, (item_id, _) in enumerate(items)}
    for k, v in enumerate(verdicts):
        if v.is_dup:
            a, b = set(sets[k].tolist()), set(sets[position[v.dup_of]].tolist())
            assert len(a & b) / len(a | b) == pytest.approx(v.similarity) and v.similarity >= threshold


# -- texts that break the usual path -----------------------------------------------------------

@pytest.mark.parametrize("index", INDEXES)
def test_lone_surrogates_and_emoji_get_verdicts(index: str) -> None:
    d = Deduper(DedupSettings(index=index))
    items = [("a", "Explain photosynthesis \ud83d to a child."), ("b", "Explain photosynthesis to a child."),
             ("e1", "😀😀😀!!"), ("e2", "🎉🎉 ..."), ("e3", "\ud83d\ude00")]
    verdicts = d.check_and_add_many(items)
    assert [v.is_dup for v in verdicts] == [False, True, False, False, False]
    assert verdicts[1].dup_of == "a"  # the surrogate is dropped like any other non-letter
    assert normalize("😀😀😀!!") == ""  # nothing to compare: never a duplicate of another such text
    assert len(d) == 4  # the duplicate is not indexed; the rest are


def test_a_failed_batch_leaves_the_index_as_it_was() -> None:
    first = [("k0", "Write a haiku about the autumn rain.")]
    d, fresh = Deduper(batch_size=4), Deduper(batch_size=4)
    d.check_and_add_many(first)
    fresh.check_and_add_many(first)
    items = [(f"n{k}", f"Question number {k} about topic {k * 7919} in detail.") for k in range(10)]
    with pytest.raises(ValueError, match="given twice"):
        d.check_and_add_many([*items, ("k0", "An id already kept, in a later chunk.")])
    assert len(d) == 1 and "n0" not in d
    with pytest.raises(TypeError, match="pair of strings"):
        d.check_and_add_many([*items, ("x", None)])  # type: ignore[list-item]
    assert len(d) == 1
    assert d.check_and_add_many(items) == fresh.check_and_add_many(items)  # nothing half-indexed


def test_emoji_only_instruction_is_its_own_reason() -> None:
    ex = Example(id="e", instruction="😀😀😀 🎉🎉🎉 !!!", output="A fine answer.")
    r = check(ex)
    assert r is not None and r.reason == REASON_NO_TEXT


def test_lone_surrogate_is_an_encoding_rejection() -> None:
    assert encoding_rejection("x", {"instruction": "fine", "output": "also fine 😀"}) is None
    r = encoding_rejection("x", {"instruction": "bad \ud83d here", "output": "ok"})
    assert isinstance(r, Rejected) and r.reason == REASON_ENCODING
    assert "instruction" in r.detail and "\\ud83d" in r.text
    r.model_dump_json()  # the record can be written


def test_import_with_a_lone_surrogate_names_the_rejection(tmp_path: Path) -> None:
    src = tmp_path / "data.jsonl"
    # json.dumps writes the lone surrogate as the escape "\ud83d", as a cut JSON string holds it.
    records = [{"instruction": "Tell me a joke about \ud83d cats.", "output": "No."},
               {"instruction": "😀😀😀😀😀😀", "output": "Smile."},
               {"instruction": "Explain how rainbows form.", "output": "Light refracts in drops."}]
    src.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    run = tmp_path / "run"
    parser = __import__("argparse").ArgumentParser(prog="factory")
    importer.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["import", "--run", str(run), "--from", str(src)])
    assert args.func(args) == 0
    rejected = {r.id: r.reason for r in read_jsonl(run / "rejected.jsonl", Rejected)}
    assert rejected == {"data-1": REASON_ENCODING, "data-2": REASON_NO_TEXT}
    assert [ex.id for ex in read_jsonl(run / "examples.jsonl", Example)] == ["data-3"]
