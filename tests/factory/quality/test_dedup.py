"""factory.quality.deduper: near-duplicates caught, template siblings kept, exact checks, resume, decontamination."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash

from factory.quality import (
    Deduper,
    DedupSettings,
    MinHasher,
    candidate_probability,
    choose_lsh_params,
    example_text,
    jaccard,
    load_run_deduper,
    normalize,
    rejection,
    shingle_sets,
)
from schemas import Example, JsonlWriter

EN_BASE = "Write a short poem about the lonely lighthouse keeper for young children."
EN_NEAR = [
    "Compose a short poem about the lonely lighthouse keeper for young children.",  # synonym
    "Please write a short poem about the lonely lighthouse keeper for young children!",  # insertion
    "For young children, write a short poem about the lonely lighthouse keeper.",  # reordering
    "write a short poem about lonely lighthouse keeper for young children",  # case, article, punctuation
]
# Same template, different content: not duplicates.
EN_SIBLINGS = [
    "Write a funny limerick about the ancient volcano for retired history teachers.",
    "Write a formal speech about the quantum computer for hospital patients.",
]
KO_BASE = "초등학생을 위해 오래된 등대지기에 관한 짧은 이야기를 써 주세요."
KO_NEAR = [
    "초등학생을 위해 오래된 등대지기에 대한 짧은 이야기를 써 주세요.",  # particle: 에 관한 -> 에 대한
    "초등학생을 위해 오래된 등대지기에 관한 짧은 이야기를 써 줘.",  # ending: 써 주세요 -> 써 줘
    "초등학생을 위해서 오래된 등대지기에 관한 짧은 이야기를 간단히 써 주십시오.",  # insertion + ending
    "오래된 등대지기에 관한 짧은 이야기를 초등학생을 위해 써 주세요.",  # reordering
    "초등학생을위해 오래된 등대지기에관한 짧은이야기를 써주세요.",  # spacing
]
KO_SIBLINGS = [
    "대학생을 위해 새로운 우주 정거장에 관한 슬픈 시를 써 주세요.",
    "어르신을 위해 전통 시장에 관한 재미있는 광고 문구를 써 주세요.",
]


@pytest.mark.parametrize("near", EN_NEAR + KO_NEAR)
def test_near_duplicates_are_caught(near: str) -> None:
    d = Deduper()
    base = EN_BASE if near.isascii() else KO_BASE
    assert not d.check_and_add("base", base).is_dup
    verdict = d.check_and_add("near", near)
    assert verdict.is_dup, f"missed: {near!r}"
    assert verdict.dup_of == "base"
    assert d.settings.threshold <= verdict.similarity <= 1.0
    assert len(d) == 1  # the duplicate is not kept


def test_template_siblings_are_kept() -> None:
    d = Deduper()
    verdicts = d.check_and_add_many(
        [("en0", EN_BASE), *[(f"en{i}", t) for i, t in enumerate(EN_SIBLINGS, 1)],
         ("ko0", KO_BASE), *[(f"ko{i}", t) for i, t in enumerate(KO_SIBLINGS, 1)]])
    assert [v.is_dup for v in verdicts] == [False] * 6
    assert len(d) == 6


def test_rouge_tokenizer_blind_spot_is_covered() -> None:
    # rouge-score keeps only [a-z0-9] tokens: both of these are empty to Alpaca's ROUGE-L filter.
    d = Deduper()
    d.check_and_add("a", "서울의 인구는 얼마인가요?")
    assert d.check_and_add("b", "서울의 인구는 얼마입니까?").is_dup


def test_streaming_batch_sees_earlier_items_of_the_same_batch() -> None:
    d = Deduper(batch_size=4)
    items = [(f"x{i}", f"Explain topic number {i} of the syllabus in plain words, please.") for i in range(3)]
    items += [("dup", EN_BASE), ("dup2", EN_NEAR[0]), ("dup3", EN_NEAR[1])]
    verdicts = d.check_and_add_many(items)
    assert [v.is_dup for v in verdicts[3:]] == [False, True, True]
    assert verdicts[4].dup_of == "dup" and verdicts[5].dup_of == "dup"


@pytest.mark.parametrize("index", ["prefix", "bands"])
def test_candidates_are_checked_not_dropped(index: str) -> None:
    # A template sibling (Jaccard 0.49) shares a prefix shingle with its source, and with bands
    # of one row (one equal MinHash value of 64 makes a candidate) an LSH bucket: a candidate
    # for sure, which the exact check (or the bitmap bound) must keep.
    s = DedupSettings(num_perm=64, bands=64, rows=1, index=index)
    d = Deduper(s)
    d.check_and_add("a", EN_BASE)
    sibling = "Write a short poem about the busy harbor master for young children."
    verdict = d.check_and_add("b", sibling)
    assert d.candidates_seen >= 1
    assert not verdict.is_dup
    a, b = shingle_sets([EN_BASE, sibling], s.shingle_size)
    assert 0.4 < jaccard(a, b) < s.threshold
    assert verdict.similarity in (0.0, pytest.approx(jaccard(a, b)))  # 0.0: the bitmap bound ruled it out
    assert len(d) == 2


def test_similarity_is_the_exact_jaccard_of_the_shingle_sets() -> None:
    d = Deduper()
    d.check_and_add("base", EN_BASE)
    verdict = d.check_and_add("near", EN_NEAR[0])
    a, b = shingle_sets([EN_BASE, EN_NEAR[0]], d.settings.shingle_size)
    assert verdict.similarity == pytest.approx(jaccard(a, b))
    assert jaccard(a, b) == pytest.approx(len(set(a.tolist()) & set(b.tolist())) / len(set(a.tolist()) | set(b.tolist())))


def test_index_survives_a_resume(tmp_path) -> None:
    run = tmp_path / "run"
    kept = [Example(id=f"e{i}", instruction=t, output="ok") for i, t in enumerate([EN_BASE, KO_BASE, *EN_SIBLINGS])]
    with JsonlWriter(run / "examples.jsonl") as w:
        w.append(kept)
    # A crash mid-append left a torn last line: skipped, as the run itself skips it.
    with (run / "examples.jsonl").open("ab") as f:
        f.write(b'{"id": "torn", "instruction": "Write a po')
    d = load_run_deduper(run)
    assert len(d) == len(kept)
    assert all(ex.id in d for ex in kept)
    assert "torn" not in d
    verdict = d.check_and_add("new", KO_NEAR[1])
    assert verdict.is_dup and verdict.dup_of == "e1"
    assert not d.check_and_add("fresh", "Summarize the causes of the French Revolution in three sentences.").is_dup


def test_decontamination_against_eval_questions(tmp_path) -> None:
    q = "What are the health benefits of drinking green tea every morning?"
    d = load_run_deduper(tmp_path, eval_items=[("81", q)])
    verdict = d.check_and_add("g1", "What are the health benefits of drinking green tea each morning?")
    assert verdict.is_dup and verdict.kind == "eval" and verdict.dup_of == "81"
    rec = rejection("g1", verdict, text="...")
    assert rec.reason == "contamination"
    assert rec.detail.startswith("duplicate of eval question 81 (similarity ")
    assert d.count("eval") == 1 and d.count("kept") == 0


def test_seeds_are_checked_and_named(tmp_path) -> None:
    d = load_run_deduper(tmp_path, seeds=[("seed_task_3", EN_BASE)])
    verdict = d.check_and_add("g1", EN_NEAR[3])
    assert verdict.kind == "seed"
    rec = rejection("g1", verdict)
    assert rec.reason == "duplicate"
    assert rec.detail == f"duplicate of seed seed_task_3 (similarity {verdict.similarity:.2f})"


def test_verdict_unpacks_as_a_triple() -> None:
    d = Deduper()
    d.check_and_add("a", EN_BASE)
    is_dup, dup_of, similarity = d.check_and_add("b", EN_NEAR[0])
    assert (is_dup, dup_of) == (True, "a") and similarity > 0.55


def test_kept_duplicate_reason_text() -> None:
    d = Deduper()
    d.check_and_add("ex-17", EN_BASE)
    verdict = d.check_and_add("ex-18", EN_NEAR[1])
    assert rejection("ex-18", verdict).detail == f"duplicate of ex-17 (similarity {verdict.similarity:.2f})"
    with pytest.raises(ValueError):
        rejection("ex-1", d.check("Something else entirely, about tax law in Peru."))


def test_repeated_id_is_an_error_and_changes_nothing() -> None:
    d = Deduper()
    d.add("a", "first text about apples and pears")
    with pytest.raises(ValueError, match="'a' is given twice"):
        d.add("a", "another text about oranges")
    with pytest.raises(ValueError, match="'b' is given twice"):
        d.check_and_add_many([("b", "Explain tides to a child."), ("b", "List three uses of copper.")])
    assert len(d) == 1 and "b" not in d
    assert not d.check_and_add("b", "Explain tides to a child.").is_dup  # the failed call left no trace


def test_signatures_equal_datasketch_minhash() -> None:
    sets = shingle_sets([EN_BASE, KO_BASE, "ab", ""], 3)
    hasher = MinHasher(num_perm=64, seed=5)
    sigs = hasher.signatures(sets)
    for s, sig in zip(sets, sigs):
        m = MinHash(num_perm=64, seed=5, scheme="affine32", hashfunc=lambda x: x)
        m.update_batch(s.tolist())
        assert np.array_equal(m.hashvalues, sig)


def test_datasketch_index_gives_the_same_decisions() -> None:
    texts = [EN_BASE, *EN_NEAR, *EN_SIBLINGS, KO_BASE, *KO_NEAR, *KO_SIBLINGS]
    items = [(f"t{i}", t) for i, t in enumerate(texts)]
    ours = Deduper().check_and_add_many(items)
    theirs = Deduper(DedupSettings(index="datasketch")).check_and_add_many(items)
    assert decisions(ours) == decisions(theirs)


def test_normalisation() -> None:
    assert normalize("Hello, World!  ") == normalize("hello world")
    assert normalize("Ｃａｆé") == "cafe"  # NFKC folds full-width letters; the accent goes
    assert normalize("서울") == "서울" .replace("서", "\u1109\u1165").replace("울", "\u110b\u116e\u11af")  # jamo
    short = shingle_sets(["ab", "AB!", "", "..."], 3)
    assert np.array_equal(short[0], short[1])  # a text shorter than a shingle is one shingle
    assert len(short[2]) == len(short[3]) == 0  # no letter or digit: the empty set


@pytest.mark.parametrize("threshold", [0.5, 0.55, 0.6, 0.7, 0.8])
def test_lsh_parameters(threshold: float) -> None:
    s = DedupSettings(threshold=threshold)
    bands, rows = choose_lsh_params(threshold, s.num_perm)
    assert bands * rows <= s.num_perm
    assert candidate_probability(threshold, bands, rows) >= 0.99  # a pair AT the threshold
    assert s.lsh_params() == (bands, rows)
    assert Deduper(s).hasher.num_perm == bands * rows  # only the permutations the bands use
    with pytest.raises(ValueError, match="exceeds num_perm"):
        DedupSettings(num_perm=64, bands=20, rows=4)
    with pytest.raises(ValueError, match="both"):
        DedupSettings(bands=8)


def test_layout_spends_few_permutations_and_few_chance_candidates() -> None:
    # Of the layouts that find a pair at the threshold with probability 0.99, the cheap one: at
    # 0.5 three rows (one or two make every template sibling a candidate; four cost 288
    # permutations), and never more permutations than needed for the target.
    bands, rows = choose_lsh_params(0.5, 256)
    assert rows == 3 and candidate_probability(0.5, bands - 1, rows) < 0.99
    b64, r64 = choose_lsh_params(0.5, 64)
    assert b64 * r64 <= 64 and candidate_probability(0.5, b64, r64) >= 0.99
    high = choose_lsh_params(0.8, 256)
    assert high[1] > 3 and candidate_probability(0.8, *high) >= 0.99


def test_example_text_field() -> None:
    ex = Example(id="1", instruction="Translate to French.", input="Good morning", output="Bonjour")
    assert example_text(ex) == "Translate to French."
    assert example_text(ex, "prompt") == "Translate to French.\n\nGood morning"


DISTINCT = [
    "Summarize the causes of the French Revolution in three sentences.",
    "Explain how a refrigerator keeps food cold, in simple terms.",
    "List five ways to reduce plastic waste at home.",
    "Write a limerick about a cat who learns to play the violin.",
    "What is the difference between weather and climate?",
    "Draft a polite email asking a landlord to fix a leaking faucet.",
    "Give me a three-day itinerary for a first visit to Kyoto.",
    "Translate the proverb 'actions speak louder than words' into Spanish.",
    "Describe the water cycle for a ten-year-old.",
    "Suggest names for a bakery that sells only sourdough bread.",
    "Compare electric cars and hybrid cars for a daily commute.",
    "How do vaccines train the immune system?",
    EN_BASE,
    KO_BASE,
    "한국의 전통 명절인 추석에 대해 설명해 주세요.",
    "재택근무의 장점과 단점을 각각 세 가지씩 알려 주세요.",
    "김치찌개를 맛있게 끓이는 방법을 단계별로 알려 주세요.",
    "기후 변화가 농업에 미치는 영향을 요약해 주세요.",
]


def _mixed_stream() -> list[tuple[str, str]]:
    """Distinct texts, some followed at once by a rewording, then rewordings of early ones."""
    items: list[tuple[str, str]] = []
    for k, text in enumerate(DISTINCT):
        items.append((f"b{k}", text))
        if k % 2 == 0:
            items.append((f"d{k}", text.rstrip(".?!") + "!" if text.isascii() else text.replace("주세요", "줘")))
    items += [(f"late{k}", "Please, " + DISTINCT[k][0].lower() + DISTINCT[k][1:]) for k in range(0, 12, 3)]
    items += EN_SIBLINGS_ITEMS
    return items


EN_SIBLINGS_ITEMS = [(f"s{k}", t) for k, t in enumerate(EN_SIBLINGS + KO_SIBLINGS)]


def decisions(verdicts: list) -> list[tuple]:
    """What a verdict decides: a unique text's highest similarity seen depends on which
    candidates an index found, a duplicate's does not."""
    return [(v.is_dup, v.dup_of, v.kind, v.similarity if v.is_dup else None) for v in verdicts]


@pytest.mark.parametrize("index", ["prefix", "bands"])
@pytest.mark.parametrize("batch_size", [1, 7, 1024])
def test_chunked_check_equals_the_reference_index(batch_size: int, index: str) -> None:
    # The sorted-array indexes, chunked (candidates inside a chunk found from their keys), give
    # the verdicts of datasketch's MinHashLSH probed one text at a time.
    items = _mixed_stream()
    ours = Deduper(DedupSettings(index=index), batch_size=batch_size).check_and_add_many(items)
    reference = Deduper(DedupSettings(index="datasketch"), batch_size=1).check_and_add_many(items)
    assert decisions(ours) == decisions(reference)
    dups = {item_id for (item_id, _), v in zip(items, ours) if v.is_dup}
    assert dups == {i for i, _ in items if i.startswith(("d", "late"))}


def test_sorted_bands_return_every_bucket_mate_once() -> None:
    from factory.quality.bands import SortedBands

    rng = np.random.default_rng(3)
    index = SortedBands(bands=4, rows=2)
    sigs = rng.integers(0, 3, size=(300, 8), dtype=np.uint32)  # few values: many shared buckets
    keys = index.band_keys(sigs)
    for start in range(0, 300, 37):  # several runs, merged as they grow
        index.add(keys[start : start + 37], np.arange(start, min(start + 37, 300)))
    probe = rng.integers(0, 3, size=(20, 8), dtype=np.uint32)
    query, rows = index.query(index.band_keys(probe))
    found = set(zip(query.tolist(), rows.tolist()))
    expected = {
        (q, r) for q in range(20) for r in range(300)
        if any((probe[q, 2 * b : 2 * b + 2] == sigs[r, 2 * b : 2 * b + 2]).all() for b in range(4))
    }
    assert found == expected
    assert len(found) == len(query)  # each pair once


def test_iter_check_and_add_gives_the_same_verdicts() -> None:
    items = _mixed_stream()
    assert list(Deduper(batch_size=5).iter_check_and_add(items)) == Deduper(batch_size=5).check_and_add_many(items)
