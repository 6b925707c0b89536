"""The simulator's instructions: fresh tasks, and now and then a near-copy of a favourite one.

A real model asked for new tasks again and again mostly writes new ones, yet keeps coming back
to a few favourites ("Write a poem about the sea.") in slightly different words. So:

- with probability `duplicate_share`, the instruction is one of `FAVOURITES` favourite tasks
  (chosen by the request's generator, written from its own fixed seed, the same in every request)
  with one or two small edits: a near-duplicate of the other times that favourite came up;
- otherwise it is a fresh task: a frame with noun phrases, a verb, a field, an audience and a
  closing clause. Its slots carry most of its characters, so two fresh tasks are near-duplicates
  of each other about as rarely as two different real tasks (a 100,000-example run keeps its
  yield; tests/factory/simulator/test_instructions.py measures it through the deduper).

Everything comes from the request's `random.Random`: the same request gives the same task.
"""

from __future__ import annotations

import random

from .text import Language, _a, _josa, _pick
from .words import (
    EN_ADJECTIVES,
    EN_ADVERBS,
    EN_AUDIENCES,
    EN_DOMAINS,
    EN_GENRES,
    EN_NOUNS,
    EN_VERBS,
    KO_ADJECTIVES,
    KO_ADVERBS,
    KO_AUDIENCES,
    KO_GENRES,
    KO_NOUNS,
)

# The share of instructions that are near-copies of a favourite (SimConfig.duplicate_share):
# some repetition, as a real model shows, far from a collapse of the yield.
DEFAULT_DUPLICATE_SHARE = 0.1
# Favourite tasks per language. Few, so that after the first few hundred instructions nearly
# every favourite drawn is a repeat and the share of near-duplicates is about duplicate_share.
FAVOURITES = 64


def instruction(r: random.Random, lang: Language, duplicate_share: float = DEFAULT_DUPLICATE_SHARE) -> str:
    """A new task's instruction in `lang`: fresh, or (with probability `duplicate_share`) a
    near-copy of a favourite."""
    if duplicate_share > 0 and r.random() < duplicate_share:
        favourite = random.Random(f"favourite-{lang}-{int(r.random() * FAVOURITES)}")
        return _edited(r, _fresh(favourite, lang), lang)
    return _fresh(r, lang)


def _fresh(r: random.Random, lang: Language) -> str:
    return _ko_fresh(r) if lang == "ko" else _en_fresh(r)


# Small edits a model makes when it writes a task it wrote before: a word added in front, a
# word dropped, two neighbouring words swapped.
_EN_OPENERS = ("Please", "Now", "Briefly", "Carefully", "In short,", "Kindly")  # then a lowercase word
_KO_OPENERS = ("이번에는", "간단히", "다시", "자세히", "먼저", "한번")


def _edited(r: random.Random, text: str, lang: Language) -> str:
    words = text.split()
    for _ in range(1 + int(r.random() * 2)):
        how = int(r.random() * 3)
        if how == 0:
            if lang == "en":
                words[0] = words[0][:1].lower() + words[0][1:]
            words.insert(0, _pick(r, _KO_OPENERS if lang == "ko" else _EN_OPENERS))
        elif how == 1 and len(words) > 4:
            del words[1 + int(r.random() * (len(words) - 2))]
        elif len(words) > 3:
            k = int(r.random() * (len(words) - 2))
            words[k], words[k + 1] = words[k + 1], words[k]
    return " ".join(words)


# --- English -------------------------------------------------------------------------------

# Short glue and many slots: the words drawn carry most of a task's characters.
_EN_OPENERS_FRESH = (
    "Explain", "Describe", "Summarize", "Discuss", "Compare", "Analyze", "Outline", "Evaluate",
    "Illustrate", "Contrast", "Review", "Examine",
)
_EN_LINKS = ("and", "versus", "through", "with", "against", "beside", "within", "after", "before", "around")
_EN_TASKS = (
    "in {n} sentences", "as a short {genre}", "as a list of {n} points", "in under {n}0 words",
    "as a {genre}", "with {n} examples", "step by step", "in plain words",
)


def _en_np(r: random.Random) -> str:
    return f"{_pick(r, EN_ADJECTIVES)} {_pick(r, EN_NOUNS)}"


def _en_fresh(r: random.Random) -> str:
    opener = _pick(r, _EN_OPENERS_FRESH)
    if r.random() < 0.3:
        opener = f"{opener} how to {_pick(r, EN_VERBS)}"
    else:
        opener = f"{opener} the"
    text = (f"{opener} {_en_np(r)} {_pick(r, _EN_LINKS)} the {_en_np(r)} {_pick(r, _EN_LINKS)} "
            f"{_a(_en_np(r))} for {_pick(r, EN_AUDIENCES)} in {_pick(r, EN_DOMAINS)}, "
            f"{_pick(r, EN_ADVERBS)} and ")
    task = _pick(r, _EN_TASKS).format(n=r.randint(2, 6), genre=_pick(r, EN_GENRES))
    return text + task + "."


# --- Korean --------------------------------------------------------------------------------

_KO_ENDINGS = (
    "설명하세요", "정리해 주세요", "비교해 보세요", "분석해 주세요", "요약하세요", "소개해 주세요",
    "평가해 보세요", "예를 들어 보여 주세요", "질문으로 만들어 보세요", "글로 써 주세요",
)
# (after a final consonant, after a vowel): the particle that fits the word before it
_KO_LINKS = (("과 함께", "와 함께"), ("에 비추어", "에 비추어"), ("의 관점에서", "의 관점에서"),
             ("에 관련지어", "에 관련지어"), ("을 바탕으로", "를 바탕으로"), ("과 나란히", "와 나란히"),
             ("을 넘어", "를 넘어"), ("에 견주어", "에 견주어"))
_KO_PLACES = ("분야에서", "시대에", "현장에서", "수업에서", "지역에서", "연구에서", "생활에서", "산업에서")
_KO_RELATIONS = ("관계를", "차이를", "공통점을", "영향을", "변화를", "역할을", "장단점을", "미래를")


def _ko_np(r: random.Random) -> str:
    return f"{_pick(r, KO_ADJECTIVES)} {_pick(r, KO_NOUNS)}"


def _ko_fresh(r: random.Random) -> str:
    np1, np2, np3 = _ko_np(r), _ko_np(r), _ko_np(r)
    aud, genre, adv = _pick(r, KO_AUDIENCES), _pick(r, KO_GENRES), _pick(r, KO_ADVERBS)
    with_final, without_final = _pick(r, _KO_LINKS)
    text = (f"{_pick(r, KO_NOUNS)} {_pick(r, _KO_PLACES)} {_josa(np1, with_final, without_final)} "
            f"{_josa(np2, '과', '와')} {np3}의 {_pick(r, _KO_RELATIONS)} {aud}에게 {_josa(genre, '으로', '로')} "
            f"{adv} {_pick(r, _KO_ENDINGS)}.")
    if int(r.random() * 4) == 0:
        text += f" {r.randint(2, 6)}문장 이내로 답하세요."
    return text
