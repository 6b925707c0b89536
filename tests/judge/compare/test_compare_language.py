"""The wrong-language check for answers to Korean questions."""

from __future__ import annotations

import pytest

from judge.compare.language import HANGUL_THRESHOLD, hangul_share, wrong_language


def test_korean_with_english_terms_and_code_is_korean() -> None:
    text = "파이썬에서 list comprehension을 사용하면 코드가 짧아집니다.\n```python\nsquares = [x * x for x in range(10)]\n```"
    assert hangul_share(text) > HANGUL_THRESHOLD
    assert not wrong_language(text, "ko")


def test_an_english_answer_to_a_korean_question_is_the_wrong_language() -> None:
    text = "Seoul is the capital of South Korea. 서울"
    assert hangul_share(text) == pytest.approx(2 / 31)  # 29 Latin letters, 2 Hangul
    assert wrong_language(text, "ko")
    assert not wrong_language(text, "en")  # only Korean questions are checked


def test_an_answer_without_letters_is_never_wrong() -> None:
    assert hangul_share("42 + 7 = 49") is None
    assert not wrong_language("42", "ko")
