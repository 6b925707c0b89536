"""factory.quality.filters: each filter rejects what it should, with its name as the reason, and keeps the rest."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from factory.quality.filters import (
    FilterSettings,
    Rejection,
    check,
    letter_shares,
    parse_rejection,
)
from schemas import Example, Provenance


def ex(instruction: str, output: str = "A fine answer.", input: str = "") -> Example:
    return Example(id="e1", instruction=instruction, input=input, output=output)


def reason(e: Example, finish_reason: str | None = None, **settings) -> str | None:
    r = check(e, finish_reason, FilterSettings(**settings))
    return r.reason if r else None


def test_a_good_example_is_kept() -> None:
    assert check(ex("Give three tips for staying healthy.", "Sleep, eat well, move.")) is None
    assert reason(ex("건강을 지키는 팁 세 가지를 알려 주세요.", "잘 자고, 잘 먹고, 많이 걸으세요."), lang="ko") is None


def test_truncated() -> None:
    r = check(ex("Write a haiku about rain."), "length")
    assert r == Rejection("truncated", "the answer was cut off at max_tokens (finish_reason=length)")
    assert check(ex("Write a haiku about rain."), "stop") is None


@pytest.mark.parametrize("e, detail", [
    (ex("Hi"), "instruction has 2 characters, fewer than 5"),
    (ex("Write a poem.", "x" * 9000), "output has 9000 characters, more than 8000"),
    (ex("Summarize this.", input="y" * 5000), "input has 5000 characters, more than 4000"),
])
def test_length(e: Example, detail: str) -> None:
    r = check(e)
    assert r is not None and r.reason == "length" and r.detail == detail


def test_a_whitespace_output_is_empty_and_with_empty_off_too_short() -> None:
    assert check(ex("Write a poem.", "   ")) == Rejection("empty", "the output is empty (whitespace only)")
    r = check(ex("Write a poem.", "   "), None, FilterSettings(disabled=["empty"]))
    assert r == Rejection("length", "output has 0 characters, fewer than 1")


def test_length_bounds_are_settings() -> None:
    assert reason(ex("Hi there, tell me a joke."), min_instruction_chars=30) == "length"
    assert reason(ex("Hi"), min_instruction_chars=1) is None
    with pytest.raises(ValidationError, match="above"):
        FilterSettings(min_output_chars=10, max_output_chars=5)


@pytest.mark.parametrize("instruction", [
    "Describe the image below.",
    "Generate an image of a cat on a sofa.",
    "Draw a picture of a dragon.",
    "Summarize the attached report.",
    "Listen to this recording and transcribe it.",
    "Watch the video and list the main points.",
    "Create a chart of monthly sales.",
    "Visit the following website and summarize it.",
    "Summarize the article at https://example.com/news/1",
    "이 사진을 설명해 주세요.",
    "다음 그래프에서 추세를 찾아 주세요.",
    "첨부한 문서를 요약해 줘.",
    "그림을 그려 주세요.",
    "이 노래를 들어 보고 감상을 써 주세요.",
    "아래 동영상의 내용을 정리해 주세요.",
    "음성 파일을 텍스트로 바꿔 주세요.",
])
def test_unsupported_tasks(instruction: str) -> None:
    r = check(ex(instruction))
    assert r is not None and r.reason == "unsupported", instruction


@pytest.mark.parametrize("instruction", [
    "Give tips for taking better photos.",
    "How do I file my taxes?",
    "Write a short video script about cats.",
    "Explain the plot of Hamlet.",
    "Write a song about the sea.",
    "사진 찍는 법을 알려 주세요.",
    "그림자가 생기는 이유는 무엇인가요?",
    "파일럿이 되려면 어떻게 해야 하나요?",
])
def test_text_tasks_that_mention_media_are_kept(instruction: str) -> None:
    assert check(ex(instruction)) is None, instruction


def test_unsupported_extra_words() -> None:
    assert reason(ex("Translate this into Klingon."), extra_unsupported=["klingon"]) == "unsupported"


@pytest.mark.parametrize("output", [
    "As an AI language model, I do not have real-time data.",
    "I'm sorry, but I can't help with that request.",
    "I cannot provide medical advice. Please see a doctor.",
    "저는 AI 언어 모델로서 감정을 느끼지 않습니다.",
    "죄송하지만 저는 실시간 정보에 접근할 수 없습니다.",
    "죄송합니다. 해당 요청은 도와드릴 수 없습니다.",
])
def test_refusals_and_boilerplate(output: str) -> None:
    r = check(ex("Tell me something.", output))
    assert r is not None and r.reason == "refusal", output


@pytest.mark.parametrize("instruction, output", [
    ("Write a reply to a meeting invitation.", "I'm sorry for the late reply. Thursday works for me."),
    ("Write a polite message declining an invitation.", "I'm sorry, but I can't attend on Friday."),
    ("회의 연기를 부탁하는 이메일을 써 주세요.", "죄송하지만 회의를 다음 주로 미룰 수 있을까요?"),
])
def test_apologies_that_are_the_answer_are_kept(instruction: str, output: str) -> None:
    assert check(ex(instruction, output)) is None


def test_language_korean_run() -> None:
    assert reason(ex("한국의 수도는 어디인가요?", "The capital of Korea is Seoul."), lang="ko") == "language"
    assert reason(ex("What is the capital of Korea?", "서울입니다."), lang="ko") == "language"
    # English terms and code inside a Korean answer are fine.
    mixed = ex("Python의 list comprehension을 설명해 주세요.",
               "list comprehension은 리스트를 간결하게 만드는 문법입니다.\n```python\nsquares = [x * x for x in range(10)]\n```")
    assert reason(mixed, lang="ko") is None
    # A translation task answers in the other language.
    assert reason(ex("다음 문장을 영어로 번역해 주세요: 안녕하세요", "Hello."), lang="ko") is None
    assert reason(ex("다음 문장을 영어로 번역해 주세요: 안녕하세요", "Hello."), lang="ko", translation_exempt=False) == "language"


def test_language_english_run() -> None:
    assert reason(ex("What is the capital of Korea?", "한국의 수도는 서울입니다."), lang="en") == "language"
    assert reason(ex("What is the capital of Korea?", "Seoul."), lang="en") is None
    assert reason(ex("What is 12 times 12?", "144"), lang="en") is None  # no letters: nothing to judge
    r = check(ex("What is the capital of Korea?", "한국의 수도는 서울입니다."), None, FilterSettings(lang="en"))
    assert r is not None and r.detail == "output is 0% Latin letters, below min_latin_share 80% for an en run"


def test_no_language_filter_without_a_language() -> None:
    assert reason(ex("What is the capital of Korea?", "한국의 수도는 서울입니다.")) is None


def test_hangul_share_counts_jamo() -> None:
    hangul, latin, _letters = letter_shares("Python의 list comprehension을 설명해 주세요")
    assert 0.4 < hangul < 0.5 and hangul + latin == pytest.approx(1.0)
    assert letter_shares("see `코드` and https://예시.kr/경로")[0] == 0.0  # code and URLs not counted


def test_filters_can_be_switched_off() -> None:
    assert reason(ex("Describe the image below."), disabled=["unsupported"]) is None
    with pytest.raises(ValidationError, match="unknown filter"):
        FilterSettings(disabled=["spelling"])


def test_first_failing_filter_wins() -> None:
    # Truncated and a refusal: truncation is reported (it is certain and cheapest).
    assert reason(ex("Tell me something.", "As an AI language model, I"), "length") == "truncated"


def test_rejected_records() -> None:
    e = Example(id="e7", instruction="Describe the image below.", output="A cat.",
                provenance=Provenance(recipe="self-instruct", model="m", request_key="k123"))
    rec = check(e).record(e)
    assert (rec.id, rec.reason, rec.request_key) == ("e7", "unsupported", "k123")
    assert "Describe the image below." in rec.text
    p = parse_rejection("req-1", "not json {", "expected a JSON list of tasks", request_key="k9")
    assert (p.reason, p.detail, p.text, p.request_key) == ("parse", "expected a JSON list of tasks", "not json {", "k9")
