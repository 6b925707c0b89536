"""The Naver Search client (through httpx.MockTransport: no network), and grounding in the topics
recipe's answer prompts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import httpx
import pytest

from factory.errors import SettingsError
from schemas import RunFolder
from factory.recipes.naver import (
    NaverError,
    NaverQuotaExceeded,
    NaverSearch,
    NaverSettings,
    clean,
    credentials_from_env,
)

CLIENT_ID, SECRET = "test-client-id-1234", "test-client-secret-5678"


class FakeNaver:
    """Answers like openapi.naver.com/v1/search/{kind}.json, and records what it was asked."""

    def __init__(self, *, status: int = 200, fail_first: int = 0, error_code: str = "") -> None:
        self.calls: list[httpx.Request] = []
        self.status, self.fail_first, self.error_code = status, fail_first, error_code

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        if len(self.calls) <= self.fail_first:
            return httpx.Response(429, json={"errorMessage": "Rate limit exceeded.", "errorCode": "012"})
        if self.status != 200:
            return httpx.Response(self.status, json={"errorMessage": "Authentication failed.", "errorCode": self.error_code})
        kind = request.url.path.rsplit("/", 1)[-1].removesuffix(".json")
        query = request.url.params["query"]
        display = int(request.url.params["display"])
        items = [{"title": f"<b>{query}</b> {kind} result {i}", "link": f"https://example.com/{kind}/{i}",
                  "description": f"About <b>{query}</b> &amp; more &quot;facts&quot; #{i}"} for i in range(display)]
        return httpx.Response(200, json={"lastBuildDate": "Mon, 01 Jan 2024 00:00:00 +0900", "total": 99,
                                         "start": 1, "display": display, "items": items})


def make(folder: Path, fake: FakeNaver, **settings) -> NaverSearch:
    return NaverSearch(folder, NaverSettings(**settings), client_id=CLIENT_ID, client_secret=SECRET,
                       transport=httpx.MockTransport(fake), today=lambda: "2024-01-01")


def test_clean_strips_tags_and_entities():
    assert clean("<b>전세</b> 보증금 &amp; 반환 &quot;보증&quot;&#39;s  ") == '전세 보증금 & 반환 "보증"\'s'


def test_search_sends_credentials_and_gives_clean_snippets(tmp_path):
    fake = FakeNaver()

    async def go():
        async with make(tmp_path, fake, display=2) as naver:
            return await naver.search("blog", "전세  보증금")

    snippets = anyio.run(go)
    request = fake.calls[0]
    assert request.url.path == "/v1/search/blog.json"
    assert request.url.params["query"] == "전세 보증금" and request.url.params["display"] == "2"
    assert request.headers["X-Naver-Client-Id"] == CLIENT_ID and request.headers["X-Naver-Client-Secret"] == SECRET
    assert [s.title for s in snippets] == ["전세 보증금 blog result 0", "전세 보증금 blog result 1"]
    assert snippets[0].description == 'About 전세 보증금 & more "facts" #0'
    assert snippets[1].link == "https://example.com/blog/1"


def test_answers_are_cached_in_the_run_folder(tmp_path):
    fake = FakeNaver()

    async def go():
        async with make(tmp_path, fake, kinds=["blog", "news"]) as naver:
            first = await naver.gather("청약")
            again = await naver.gather("청약")
            return first, again, naver.cache_hits

    first, again, hits = anyio.run(go)
    assert first == again and len(first) == 6 and hits == 2 and len(fake.calls) == 2

    async def later():  # a new client on the same folder (a rerun) asks nothing
        async with make(tmp_path, fake, kinds=["blog", "news"]) as naver:
            return await naver.gather("청약")

    assert anyio.run(later) == first and len(fake.calls) == 2
    assert CLIENT_ID not in RunFolder(tmp_path).naver_cache.read_text()


def test_the_daily_quota_is_persisted_and_respected_by_a_rerun(tmp_path):
    fake = FakeNaver()

    async def ask(queries):
        async with make(tmp_path, fake, daily_quota=3) as naver:
            for q in queries:
                await naver.search("news", q)

    anyio.run(ask, ["a", "b"])
    assert json.loads(RunFolder(tmp_path).naver_quota.read_text())["calls"] == 2
    with pytest.raises(NaverQuotaExceeded, match="quota of 3 calls for 2024-01-01"):
        anyio.run(ask, ["a", "c", "d"])  # "a" is cached; "c" is the third call; "d" is over
    assert len(fake.calls) == 3


def test_a_new_day_starts_a_new_count(tmp_path):
    fake = FakeNaver()
    day = ["2024-01-01"]

    async def ask(q):
        naver = NaverSearch(tmp_path, NaverSettings(daily_quota=1), client_id=CLIENT_ID, client_secret=SECRET,
                            transport=httpx.MockTransport(fake), today=lambda: day[0])
        async with naver:
            await naver.search("kin", q)

    anyio.run(ask, "a")
    with pytest.raises(NaverQuotaExceeded):
        anyio.run(ask, "b")
    day[0] = "2024-01-02"
    anyio.run(ask, "b")
    assert json.loads(RunFolder(tmp_path).naver_quota.read_text()) ["day"] == "2024-01-02"


def test_calls_are_paced(tmp_path):
    fake = FakeNaver()

    async def go():
        async with make(tmp_path, fake, calls_per_second=20) as naver:
            started = time.monotonic()
            async with anyio.create_task_group() as tg:
                for i in range(6):
                    tg.start_soon(naver.search, "webkr", f"q{i}")
            return time.monotonic() - started

    elapsed = anyio.run(go)
    assert elapsed >= 5 / 20 * 0.95, "6 calls at 20/s take at least 0.25 s"
    assert len(fake.calls) == 6


def test_a_rate_limited_call_is_retried(tmp_path, monkeypatch):
    monkeypatch.setattr("factory.recipes.naver._backoff", lambda attempt: 0.0)
    fake = FakeNaver(fail_first=2)

    async def go():
        async with make(tmp_path, fake) as naver:
            return await naver.search("encyc", "재산세")

    assert len(anyio.run(go)) == 3 and len(fake.calls) == 3


def test_rejected_credentials_are_one_clear_error_without_the_secret(tmp_path):
    fake = FakeNaver(status=401, error_code="024")

    async def go():
        async with make(tmp_path, fake) as naver:
            await naver.search("blog", "x")

    with pytest.raises(NaverError) as e:
        anyio.run(go)
    message = str(e.value)
    assert "refused the credentials (401, errorCode 024: Authentication failed.)" in message
    assert "NAVER_CLIENT_ID" in message and "NAVER_CLIENT_SECRET" in message
    assert SECRET not in message and CLIENT_ID not in message
    assert len(fake.calls) == 1, "an auth error is not retried"


def test_missing_credentials_say_which_variable(monkeypatch):
    monkeypatch.delenv("NAVER_CLIENT_ID", raising=False)
    monkeypatch.setenv("NAVER_CLIENT_SECRET", "s")
    with pytest.raises(SettingsError, match="needs NAVER_CLIENT_ID in the environment"):
        credentials_from_env()


def test_an_unknown_search_kind_is_refused_by_the_settings():
    with pytest.raises(ValueError, match="blog"):
        NaverSettings(kinds=["images"])


# --------------------------------------------------------------------------------------------
# Grounding in the topics recipe, end to end against the simulator


def test_topics_answers_carry_naver_snippets(tmp_path, monkeypatch, capsys):
    from factory import generation as generate_module
    from factory.__main__ import main
    from factory.recipes.journal import JournalEntry
    from factory.simulator import SimConfig, run_simulator
    from schemas import Example, read_jsonl

    fake = FakeNaver()
    real = generate_module.NaverSearch
    monkeypatch.setattr(generate_module, "NaverSearch",
                        lambda *a, **kw: real(*a, **kw, transport=httpx.MockTransport(fake)))
    monkeypatch.setenv("NAVER_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("NAVER_CLIENT_SECRET", SECRET)
    keywords = tmp_path / "keywords.txt"
    keywords.write_text("mortgage rates\nproperty tax\nmoving house\n", encoding="utf-8")
    run = tmp_path / "run"
    with run_simulator(SimConfig(seed=4, output_tokens=40)) as url:
        code = main(["generate", "--run", str(run), "--base-url", url, "--model", "gpt-4o-mini", "--no-progress",
                     "--recipe", "topics", "--seeds", str(keywords), "--n", "12", "--grounding", "naver",
                     "--naver-kinds", "news", "--naver-display", "2"])
    assert code == 0, capsys.readouterr()
    journal = read_jsonl(run / "generate" / "requests.jsonl", JournalEntry)
    answers = [e for e in journal if e.kind == "planned" and e.stage == "answers"]
    assert answers
    for entry in answers:
        prompt = entry.messages[-1]["content"]
        assert "Reference material:" in prompt
        for q in entry.meta["questions"]:
            assert f"{q['text']} news result 0" in prompt  # its own search's snippet, tags removed
    examples = read_jsonl(run / "examples.jsonl", Example)
    assert len(examples) >= 12
    assert all(e.provenance.sources == ["https://example.com/news/0", "https://example.com/news/1"] for e in examples)
    quota = json.loads(RunFolder(run).naver_quota.read_text())
    assert quota["calls"] == len(fake.calls) == len({c.url.params["query"] for c in fake.calls})
    files = "".join(p.read_text(errors="replace") for p in run.rglob("*") if p.is_file() and p.suffix != ".sqlite")
    assert SECRET not in files and CLIENT_ID not in files
