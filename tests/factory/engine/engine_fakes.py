"""Test helpers for the engine: an in-process fake OpenAI API (httpx.MockTransport), settings,
requests and a synchronous `run`. Imported by the engine tests and by conftest.py."""

from __future__ import annotations

import inspect
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from factory.engine import ChatRequest, ChatResult, Engine, RunStats
from factory.engine.settings import EngineSettings

FAKE_URL = "http://fake-openai.test/v1"  # never resolved: MockTransport answers in-process
MODEL = "gpt-4o-mini"
TEST_KEY = "sk-test-0123456789ab"


@dataclass
class Call:
    """One HTTP request the fake received."""

    t: float
    body: dict[str, Any]
    headers: httpx.Headers
    prompt: str  # the last message's content
    attempt: int  # 0 for the first time this prompt arrives


Responder = Callable[["FakeAPI", Call], "httpx.Response | Awaitable[httpx.Response]"]


class FakeAPI:
    """An OpenAI chat-completions endpoint inside the test process.

    `respond(api, call)` decides each answer (default: `api.ok(call)`); it may be async (to hang
    or to take time). Every request is kept in `calls`.
    """

    def __init__(self, respond: Responder | None = None, *, key: str | None = None,
                 prompt_tokens: int = 12, completion_tokens: int = 7) -> None:
        self.respond = respond or (lambda api, call: api.ok(call))
        self.key = key
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.calls: list[Call] = []
        self._attempts: Counter[str] = Counter()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        prompt = str(body["messages"][-1]["content"])
        call = Call(time.monotonic(), body, request.headers, prompt, self._attempts[prompt])
        self._attempts[prompt] += 1
        self.calls.append(call)
        if self.key is not None and request.headers.get("authorization") != f"Bearer {self.key}":
            given = request.headers.get("authorization", "").removeprefix("Bearer ")
            return self.error(401, f"Incorrect API key provided: {given[:3]}****{given[-4:]}.", code="invalid_api_key")
        out = self.respond(self, call)
        if inspect.isawaitable(out):
            out = await out
        return out

    def ok(self, call: Call, content: str | None = None, *, prompt_tokens: int | None = None,
           completion_tokens: int | None = None, cached_tokens: int = 0, reasoning_tokens: int = 0,
           finish_reason: str = "stop", headers: dict[str, str] | None = None) -> httpx.Response:
        p = self.prompt_tokens if prompt_tokens is None else prompt_tokens
        c = self.completion_tokens if completion_tokens is None else completion_tokens
        body = {
            "id": f"chatcmpl-{len(self.calls)}", "object": "chat.completion", "created": 0,
            "model": call.body["model"],
            "choices": [{"index": 0, "finish_reason": finish_reason,
                         "message": {"role": "assistant", "content": content if content is not None else f"answer to {call.prompt}"}}],
            "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
                      "prompt_tokens_details": {"cached_tokens": cached_tokens},
                      "completion_tokens_details": {"reasoning_tokens": reasoning_tokens}},
        }
        return httpx.Response(200, json=body, headers=headers)

    @staticmethod
    def error(status: int, message: str, *, code: str | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
        return httpx.Response(status, json=body, headers=headers)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    def prompts_sent(self) -> Counter[str]:
        return Counter(c.prompt for c in self.calls)


def settings(**overrides: Any) -> EngineSettings:
    values: dict[str, Any] = {"base_url": FAKE_URL, "max_concurrency": 8, "timeout_s": 5.0, "progress": False}
    values.update(overrides)
    return EngineSettings(**values)


def request(i: int | str, *, stage: str = "test", model: str = MODEL, max_tokens: int = 50, **params: Any) -> ChatRequest:
    return ChatRequest(stage, model, [{"role": "user", "content": f"question {i}"}], {"max_tokens": max_tokens, **params},
                       meta={"i": i})


def run(engine: Engine, requests: Iterable[ChatRequest] | Any, total: int | None = None) -> tuple[RunStats, list[ChatResult]]:
    """Run the engine to the end; returns its stats and every result in delivery order."""
    results: list[ChatResult] = []
    stats = anyio.run(engine.run, requests, results.append, total)
    return stats, results
