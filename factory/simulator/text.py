"""Deterministic pseudo-text in English or Korean.

Every function takes a `random.Random`, so the same seed gives the same text. Sentences come
from several templates whose slots are filled from `words`; two simulated answers share little
more than template glue, which keeps a near-duplicate filter from collapsing them. Instructions
(new tasks) are written by factory.simulator.instructions.
"""

from __future__ import annotations

import random
import re
from typing import Literal

from .tokens import count_tokens
from .words import (
    EN_ADJECTIVES,
    EN_ADVERBS,
    EN_AUDIENCES,
    EN_DOMAINS,
    EN_NOUNS,
    EN_VERBS,
    KO_ADJECTIVES,
    KO_ADVERBS,
    KO_AUDIENCES,
    KO_NOUNS,
)

Language = Literal["en", "ko"]

# Every free text the simulator writes starts with this, so simulated data is never mistaken
# for a real model's output (also inside JSON strings).
MARKER = "[simulated]"

_HANGUL_WORD = re.compile(r"[\uac00-\ud7a3]+")
_LATIN_WORD = re.compile(r"[A-Za-z]+")


def _pick(r: random.Random, seq: tuple[str, ...]) -> str:
    # random() is one C call; Random.choice goes through _randbelow in Python (4x slower).
    return seq[int(r.random() * len(seq))]


def detect_language(text: str) -> Language:
    """Korean when Hangul words outnumber Latin-letter words, else English."""
    hangul = len(_HANGUL_WORD.findall(text))
    return "ko" if hangul and hangul > len(_LATIN_WORD.findall(text)) else "en"


# --- English -------------------------------------------------------------------------------


def _third_person(verb: str) -> str:
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    return verb + "s"


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _en_sentence(r: random.Random) -> str:
    n1, n2 = _pick(r, EN_NOUNS), _pick(r, EN_NOUNS)
    a1, a2 = _pick(r, EN_ADJECTIVES), _pick(r, EN_ADJECTIVES)
    v, v2 = _pick(r, EN_VERBS), _pick(r, EN_VERBS)
    adv, dom, aud = _pick(r, EN_ADVERBS), _pick(r, EN_DOMAINS), _pick(r, EN_AUDIENCES)
    t = int(r.random() * 10)
    if t == 0:
        return f"The {a1} {n1} {adv} {_third_person(v)} the {n2} in {dom}."
    if t == 1:
        return f"In {dom}, {_a(a1)} {n1} can {v} the {a2} {n2} {adv}."
    if t == 2:
        return f"{_a(a1).capitalize()} approach to the {n1} helps {aud} {v} the {n2}."
    if t == 3:
        return f"When the {n1} {_third_person(v)} the {n2}, the result is {a1} and {a2}."
    if t == 4:
        return f"Experts in {dom} note that the {n1} and the {n2} are {adv} connected."
    if t == 5:
        return f"For example, {_a(a1)} {n1} may {v} how {aud} see the {n2}."
    if t == 6:
        return f"This is why {aud} should consider the {a1} {n1} before they {v} the {n2}."
    if t == 7:
        return f"Over time, the {n1} tends to {v} {a1} {n2}s in {dom}."
    if t == 8:
        return f"One {a1} way to {v} the {n1} is to {v2} the {a2} {n2} first."
    return f"Because the {n1} is {a1}, {aud} often {v} the {n2} {adv}."


# --- Korean --------------------------------------------------------------------------------


def _has_final_consonant(word: str) -> bool:
    last = word[-1]
    return "\uac00" <= last <= "\ud7a3" and (ord(last) - 0xAC00) % 28 != 0


def _josa(word: str, with_final: str, without_final: str) -> str:
    """Attach the particle form that fits the word's last syllable (은/는, 이/가, 을/를, 과/와)."""
    return word + (with_final if _has_final_consonant(word) else without_final)


def _ko_sentence(r: random.Random) -> str:
    n1, n2 = _pick(r, KO_NOUNS), _pick(r, KO_NOUNS)
    a1, adv = _pick(r, KO_ADJECTIVES), _pick(r, KO_ADVERBS)
    t = int(r.random() * 9)
    if t == 0:
        return f"{_josa(n1, '은', '는')} {n2}에 {adv} 영향을 미칩니다."
    if t == 1:
        return f"{a1} {_josa(n1, '을', '를')} 이해하는 것은 {n2}의 발전에 도움이 됩니다."
    if t == 2:
        return f"많은 전문가들은 {_josa(n1, '이', '가')} {a1} {_josa(n2, '과', '와')} 밀접하게 연결되어 있다고 말합니다."
    if t == 3:
        return f"{_josa(n1, '을', '를')} 개선하려면 {a1} {_josa(n2, '을', '를')} 먼저 고려해야 합니다."
    if t == 4:
        return f"최근 {n1} 분야에서는 {a1} {n2}에 대한 관심이 높아지고 있습니다."
    if t == 5:
        return f"{_josa(n1, '과', '와')} {n2}의 관계를 살펴보면 {a1} 변화가 나타납니다."
    if t == 6:
        return f"예를 들어, {_josa(n1, '은', '는')} {_josa(n2, '을', '를')} 통해 {adv} 발전할 수 있습니다."
    if t == 7:
        return f"따라서 {a1} {_josa(n1, '을', '를')} 위한 {n2} 전략이 필요합니다."
    return f"{_pick(r, KO_AUDIENCES)}에게 {_josa(n1, '은', '는')} {a1} {n2}의 출발점이 됩니다."


# --- public API ----------------------------------------------------------------------------


def sentence(r: random.Random, lang: Language) -> str:
    return _ko_sentence(r) if lang == "ko" else _en_sentence(r)


def phrase(r: random.Random, lang: Language) -> str:
    """A short noun phrase: a title, topic or keyword."""
    if lang == "ko":
        return f"{_pick(r, KO_ADJECTIVES)} {_pick(r, KO_NOUNS)}"
    return f"{_pick(r, EN_ADJECTIVES)} {_pick(r, EN_NOUNS)}"


def sentences(r: random.Random, lang: Language, count: int) -> str:
    return " ".join(sentence(r, lang) for _ in range(count))


def text_of_tokens(r: random.Random, lang: Language, target_tokens: int, cap: int | None = None) -> str:
    """Marked pseudo-text of about `target_tokens` tokens (it ends at a sentence boundary,
    so it may run over by part of one sentence; the caller truncates at max_tokens).
    With `cap`, writing stops once past `cap` tokens: the caller cuts there anyway."""
    stop_at = target_tokens if cap is None else min(target_tokens, cap + 1)
    parts = [MARKER]
    used = count_tokens(MARKER)
    while used < stop_at:
        # Leading whitespace joins the next token, so counts add up across sentences.
        s = ("\n\n" if len(parts) > 1 and int(r.random() * 6) == 0 else " ") + sentence(r, lang)
        parts.append(s)
        used += count_tokens(s)
    return "".join(parts)
