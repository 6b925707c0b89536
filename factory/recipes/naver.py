"""Grounding snippets from the Naver Search API (blog, news, kin, encyc, webkr).

    search = NaverSearch.from_env(RunFolder("runs/NAME"), NaverSettings(kinds=["blog"]))
    snippets = await search.search("blog", "전세 보증금 반환 보증")

GET https://openapi.naver.com/v1/search/{kind}.json?query=...&display=N with the headers
X-Naver-Client-Id / X-Naver-Client-Secret (from NAVER_CLIENT_ID / NAVER_CLIENT_SECRET). Titles
and descriptions come with <b> highlights and HTML entities: both are removed.

The API has its own limits, kept here apart from the LLM's: a calls-per-second pace and a daily
quota (25,000 calls a day by default, counted per Korea day as Naver does). The day's count is
persisted in the run folder (`naver_quota.json`) before each call, so a resumed or repeated run
respects it; every answer is cached per (kind, query, display) in `naver_cache.jsonl`, so a
rerun asks nothing twice. Credentials never reach a file or a log line.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from factory.errors import NaverError, NaverQuotaExceeded, SettingsError, register_secret
from schemas import JsonlWriter, RunFolder, iter_jsonl

log = logging.getLogger(__name__)

API_ROOT = "https://openapi.naver.com/v1/search"
KINDS = ("blog", "news", "kin", "encyc", "webkr")

DAILY_QUOTA = 25_000  # Naver's default for the Search API
QUOTA_TZ = ZoneInfo("Asia/Seoul")  # the quota resets at midnight in Korea
Kind = Literal["blog", "news", "kin", "encyc", "webkr"]


class NaverSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kinds: list[Kind] = Field(default_factory=lambda: ["blog"], min_length=1,
                              description="which searches give snippets: blog, news, kin, encyc, webkr")
    display: int = Field(default=3, ge=1, le=100, description="results per search")
    query: Literal["question", "keyword"] = Field(
        default="question", description="search for each question, or for its keyword (fewer calls)")
    daily_quota: int = Field(default=DAILY_QUOTA, ge=1, description="calls allowed per day (Korea time)")
    calls_per_second: float = Field(default=10.0, gt=0, description="pace of calls")
    timeout_s: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=4, ge=1, le=20)

    @field_validator("kinds")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))


class Snippet(BaseModel):
    kind: str
    title: str
    description: str
    link: str = ""


_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def clean(text: str) -> str:
    """Text without tags (<b>, </b>, ...) and with HTML entities decoded (&quot; -> ")."""
    return _SPACE.sub(" ", html.unescape(_TAG.sub("", text))).strip()


def credentials_from_env() -> tuple[str, str]:
    client_id = (os.environ.get("NAVER_CLIENT_ID") or "").strip()
    secret = (os.environ.get("NAVER_CLIENT_SECRET") or "").strip()
    if not client_id or not secret:
        missing = [n for n, v in (("NAVER_CLIENT_ID", client_id), ("NAVER_CLIENT_SECRET", secret)) if not v]
        raise SettingsError(
            f"grounding with Naver needs {' and '.join(missing)} in the environment: register an application "
            "with the Search API at developers.naver.com, or run without --grounding naver"
        )
    register_secret(client_id)
    register_secret(secret)
    return client_id, secret


class _Quota:
    """Calls made today, persisted in the run folder so that every run of the folder shares it."""

    def __init__(self, path: Path, limit: int, today: Callable[[], str]) -> None:
        self.path, self.limit, self._today = path, limit, today
        self.day, self.calls = today(), 0
        if path.exists():
            try:
                data = json.loads(path.read_text())
                if data.get("day") == self.day:
                    self.calls = int(data.get("calls", 0))
            except (ValueError, TypeError, AttributeError):
                log.warning("%s is unreadable: counting today's Naver calls from 0", path)

    def take(self) -> None:
        """Count one call before it is made; NaverQuotaExceeded when today's quota is used up."""
        today = self._today()
        if today != self.day:
            self.day, self.calls = today, 0
        if self.calls >= self.limit:
            raise NaverQuotaExceeded(
                f"the Naver Search API quota of {self.limit} calls for {self.day} (Korea time) is used up "
                f"(counted in {self.path}); rerun after midnight KST, or raise --naver-quota if your plan allows more"
            )
        self.calls += 1
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"day": self.day, "calls": self.calls, "limit": self.limit, "timezone": str(QUOTA_TZ)}))
        os.replace(tmp, self.path)


def _korea_today() -> str:
    return datetime.now(QUOTA_TZ).date().isoformat()


class NaverSearch:
    """Cached, paced, quota-counted Naver searches. `aclose()` (or `async with`) when done."""

    def __init__(
        self,
        run: str | Path | RunFolder,
        settings: NaverSettings,
        *,
        client_id: str,
        client_secret: str,
        transport: httpx.AsyncBaseTransport | None = None,
        today: Callable[[], str] = _korea_today,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        folder = RunFolder(run)
        folder.generate_dir.mkdir(parents=True, exist_ok=True)
        register_secret(client_id)
        register_secret(client_secret)
        self._http = httpx.AsyncClient(
            transport=transport,
            headers={"X-Naver-Client-Id": client_id, "X-Naver-Client-Secret": client_secret},
            timeout=httpx.Timeout(settings.timeout_s),
        )
        self.quota = _Quota(folder.naver_quota, settings.daily_quota, today)
        self._cache: dict[str, list[Snippet]] = {}
        for line in iter_jsonl(folder.naver_cache, _CacheLine):
            self._cache[line.key] = line.items
        self._cache_writer = JsonlWriter(folder.naver_cache)
        self._clock = clock
        self._pace = anyio.Lock()
        self._next_call_at = 0.0
        self.calls = 0  # HTTP calls made by this object (cache hits excluded)
        self.cache_hits = 0

    @classmethod
    def from_env(cls, run: str | Path | RunFolder, settings: NaverSettings, **kwargs: Any) -> NaverSearch:
        client_id, secret = credentials_from_env()
        return cls(run, settings, client_id=client_id, client_secret=secret, **kwargs)

    async def __aenter__(self) -> NaverSearch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._cache_writer.close()
        await self._http.aclose()

    async def search(self, kind: str, query: str) -> list[Snippet]:
        """Up to `display` snippets for `query` (from the cache when asked before)."""
        if kind not in KINDS:
            raise SettingsError(f"unknown Naver search {kind!r}; use one of {', '.join(KINDS)}")
        query = _SPACE.sub(" ", query).strip()
        key = f"{kind}\t{self.settings.display}\t{query}"
        if key in self._cache:
            self.cache_hits += 1
            return self._cache[key]
        items = await self._fetch(kind, query)
        self._cache[key] = items
        self._cache_writer.append(_CacheLine(key=key, items=items))
        return items

    async def gather(self, query: str) -> list[Snippet]:
        """Snippets of every configured kind for `query`, in the order of the kinds."""
        out: list[Snippet] = []
        for kind in self.settings.kinds:
            out.extend(await self.search(kind, query))
        return out

    async def _fetch(self, kind: str, query: str) -> list[Snippet]:
        url = f"{API_ROOT}/{kind}.json"
        params = {"query": query, "display": str(self.settings.display)}
        for attempt in range(1, self.settings.max_attempts + 1):
            await self._wait_turn()
            self.quota.take()
            self.calls += 1
            try:
                response = await self._http.get(url, params=params)
            except httpx.HTTPError as e:
                if attempt == self.settings.max_attempts:
                    raise NaverError(f"Naver {kind} search failed after {attempt} attempts: {type(e).__name__}: {e}") from None
                await anyio.sleep(_backoff(attempt))
                continue
            if response.status_code == 200:
                return _snippets(kind, response)
            code, message = _error_of(response)
            if response.status_code in (401, 403):
                raise NaverError(
                    f"the Naver Search API refused the credentials ({response.status_code}"
                    f"{', errorCode ' + code if code else ''}: {message}): check NAVER_CLIENT_ID and "
                    "NAVER_CLIENT_SECRET, and that the application has the Search API enabled at developers.naver.com"
                )
            if response.status_code == 400 and code == "SE01":
                log.warning("Naver %s search refused the query %r (%s): no snippets for it", kind, query[:60], message)
                return []
            if response.status_code == 429 or response.status_code >= 500:
                if attempt < self.settings.max_attempts:
                    log.info("Naver %s search: %s %s, retrying", kind, response.status_code, message)
                    await anyio.sleep(_backoff(attempt))
                    continue
            raise NaverError(
                f"Naver {kind} search failed ({response.status_code}{', errorCode ' + code if code else ''}: {message})"
                + (f" after {attempt} attempts" if attempt > 1 else "")
            )
        raise AssertionError("unreachable")

    async def _wait_turn(self) -> None:
        """At most `calls_per_second` call starts per second, across concurrent callers."""
        async with self._pace:
            now = self._clock()
            wait = self._next_call_at - now
            if wait > 0:
                await anyio.sleep(wait)
                now = self._clock()
            self._next_call_at = max(now, self._next_call_at) + 1.0 / self.settings.calls_per_second


class _CacheLine(BaseModel):
    key: str
    items: list[Snippet]


def _backoff(attempt: int) -> float:
    return min(8.0, 0.5 * 2 ** (attempt - 1))


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("errorCode", "")), str(body.get("errorMessage", "")) or response.reason_phrase
    return "", response.reason_phrase


def _snippets(kind: str, response: httpx.Response) -> list[Snippet]:
    try:
        items = response.json().get("items", [])
    except (ValueError, AttributeError):
        raise NaverError(f"Naver {kind} search answered 200 with a body that is not the expected JSON") from None
    out = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        title, description = clean(str(item.get("title", ""))), clean(str(item.get("description", "")))
        if title or description:
            out.append(Snippet(kind=kind, title=title, description=description, link=str(item.get("link", ""))))
    return out
