"""Token estimates: labelled, fast without network, and over- rather than under-estimating."""

from __future__ import annotations

import hashlib

import pytest

from factory.engine import tokens
from factory.engine.tokens import Estimate, FallbackEstimator, estimate_input, estimator_name, get_estimator


@pytest.fixture(autouse=True)
def _fresh_cache():
    tokens._reset_cache_for_tests()
    yield
    tokens._reset_cache_for_tests()


def _no_downloads(monkeypatch):
    import requests

    def refuse(*args, **kwargs):
        raise AssertionError("tiktoken tried to download")

    monkeypatch.setattr(requests, "get", refuse)
    monkeypatch.setattr(requests.Session, "request", refuse)


def test_without_tiktokens_file_the_fallback_loads_at_once_and_never_downloads(monkeypatch):
    _no_downloads(monkeypatch)
    est = get_estimator("gpt-4o")  # (a download attempt would fail the test: see _no_downloads)
    assert est.name == FallbackEstimator.name == estimator_name("gpt-4o")


def test_a_corrupt_cached_file_falls_back_too(monkeypatch, tmp_path):
    _no_downloads(monkeypatch)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"not a bpe file")
    assert get_estimator("gpt-4o").name == FallbackEstimator.name


def test_an_estimate_says_it_is_one_and_by_what():
    est = estimate_input("gpt-4o-mini", [{"role": "user", "content": "hello there"}])
    assert isinstance(est, Estimate) and est.estimator == FallbackEstimator.name
    assert str(est).startswith("~") and "estimated by" in str(est)


def test_a_schema_and_tools_count_as_input():
    messages = [{"role": "user", "content": "hi"}]
    plain = estimate_input("gpt-4o", messages).tokens
    schema = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object", "properties": {
        "question": {"type": "string"}, "answer": {"type": "string"}}}}}
    assert estimate_input("gpt-4o", messages, {"response_format": schema}).tokens > plain + 10


SAMPLES = [
    "The quick brown fox jumps over the lazy dog.",
    "Write a Python function that returns the n-th Fibonacci number, using memoization.",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    '{"instruction": "Summarise", "input": "", "output": "A short summary.", "scores": [1, 2, 3]}',
    "인공지능은 인간의 학습 능력과 추론 능력을 컴퓨터 프로그램으로 구현한 기술입니다.",
    "다음 문장을 영어로 번역하세요: 오늘은 날씨가 정말 좋네요!",
    "Привет, как дела? Это тестовое предложение.",
    "数据科学是一门跨学科的领域。 😀🚀 1234567890",
    "internationalization localization   antidisestablishmentarianism",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_the_fallback_over_estimates_a_real_tokenizer_s_count(text):
    """Against the simulator's tokenizer (about tiktoken's rate for English, one token per Hangul
    syllable): the fallback may waste some headroom, never under-count."""
    sim_tokens = pytest.importorskip("factory.simulator.tokens")
    assert FallbackEstimator().count(text) >= sim_tokens.count_tokens(text)


def test_hangul_counts_at_least_one_token_per_syllable():
    text = "안녕하세요반갑습니다"
    assert FallbackEstimator().count(text) >= len(text)


def test_messages_add_the_chat_formatting_overhead():
    est = FallbackEstimator()
    one = tokens.estimate_message_tokens([{"role": "user", "content": "hi"}], est)
    two = tokens.estimate_message_tokens([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hi"}], est)
    assert two - one == tokens.TOKENS_PER_MESSAGE + est.count("assistant") + est.count("hi")
