"""Is an answer to a Korean question written in Korean?

The Hangul share of an answer is the Hangul characters (syllables and jamo) among all its letters,
after fenced code blocks and inline code are removed (code is in Latin letters in any language).
An answer is in the wrong language when its share is under `HANGUL_THRESHOLD` = 0.3. The threshold
is low on purpose: a Hangul syllable carries what takes two or three Latin letters, so a Korean
answer that names many English terms ("list comprehension을 사용하면") can sit near 0.4 by this
count, while an English answer is near 0. An answer without letters (a number, a formula) is never
in the wrong language.
"""

from __future__ import annotations

import re

HANGUL_THRESHOLD = 0.3
_CODE = re.compile(r"```.*?(```|$)|`[^`\n]*`", re.DOTALL)


def _is_hangul(ch: str) -> bool:
    o = ord(ch)
    return 0xAC00 <= o <= 0xD7A3 or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F or 0xA960 <= o <= 0xA97F


def hangul_share(text: str) -> float | None:
    """Hangul letters / all letters outside code; None when there are no letters."""
    prose = _CODE.sub(" ", text)
    letters = [ch for ch in prose if ch.isalpha()]
    if not letters:
        return None
    return sum(map(_is_hangul, letters)) / len(letters)


def wrong_language(text: str, lang: str | None, threshold: float = HANGUL_THRESHOLD) -> bool:
    """True for an answer to a Korean (`lang` "ko") question that is not in Korean."""
    if lang != "ko":
        return False
    share = hangul_share(text)
    return share is not None and share < threshold
