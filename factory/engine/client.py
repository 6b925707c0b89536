"""Building the OpenAI SDK client the engine (and the Batch API path) sends through, and reading
what comes back: the API key, the HTTP client, the request's keyword arguments, the reply."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import httpx2
import openai

from factory.engine.completion import Reply, read_completion
from factory.engine.records import ChatRequest
from factory.engine.retry import MalformedResponse
from factory.engine.settings import EngineSettings, resolve_api_key
from factory.errors import SettingsError, register_secret


def read_reply(raw: Any) -> Reply:
    """The first choice and the usage of an HTTP response; MalformedResponse if it is not a completion."""
    try:
        body = raw.json()
    except ValueError as e:  # cut short, or not JSON at all
        raise MalformedResponse(f"the body is not JSON ({e})") from e
    return read_completion(body)


def api_key_for(settings: EngineSettings, api_key: str | None = None) -> str:
    """The key to send: `api_key`, else OPENAI_API_KEY from the environment (or `.env`); registered as a
    secret so no log line shows it. None at all is refused, before anything is sent, for any server
    that is not local (see `EngineSettings.is_local`)."""
    key = api_key if api_key is not None else resolve_api_key()
    if not key and not settings.is_local:
        raise SettingsError(
            f"no API key for {settings.base_url}: set OPENAI_API_KEY in the environment (or in a .env file), "
            "or point --base-url at a local server"
        )
    register_secret(key)
    return key or "no-key"  # a local server needs none; the SDK wants a non-empty one


@asynccontextmanager
async def openai_client(
    settings: EngineSettings, *, api_key: str, http_client: httpx.AsyncClient | None = None
) -> AsyncIterator[openai.AsyncOpenAI]:
    """The SDK client for `settings.base_url`: the SDK's own retries off (ours are logged), every call
    bounded by `settings.timeout_s`, on `http_client` or else the fastest HTTP client at hand (closed after)."""
    owned = http_client is None
    http = http_client or _default_http_client(settings.timeout_s)
    client = openai.AsyncOpenAI(
        api_key=api_key, base_url=settings.base_url, max_retries=0, http_client=http, timeout=settings.timeout_s
    )
    try:
        yield client
    finally:
        if owned:
            with anyio.move_on_after(5.0, shield=True):
                await http.aclose()


@dataclass
class Endpoint:
    """One server of the run, and what it did (for the per-endpoint throughput)."""

    url: str
    client: openai.AsyncOpenAI
    in_flight: int = 0
    done: int = 0
    output_tokens: int = 0


class Endpoints:
    """The servers a run sends to (`--base-url` may name several): each request goes to the one with
    the fewest requests in flight, so a slower server gets fewer."""

    def __init__(self, endpoints: list[Endpoint]) -> None:
        self.all = endpoints

    def pick(self) -> Endpoint:
        return min(self.all, key=lambda e: e.in_flight)  # ties: the first named

    def throughput(self, seconds: float) -> dict[str, dict[str, float]]:
        """Per endpoint: requests answered, output tokens, output tokens per second of the run."""
        return {e.url: {"done": e.done, "output_tokens": e.output_tokens,
                        "output_tokens_per_s": round(e.output_tokens / seconds, 2) if seconds > 0 else 0.0}
                for e in self.all}


@asynccontextmanager
async def open_endpoints(settings: EngineSettings, *, api_key: str,
                         http_client: httpx.AsyncClient | None = None) -> AsyncIterator[Endpoints]:
    """A client per endpoint of `settings.base_url` (each closed after)."""
    async with AsyncExitStack() as stack:
        endpoints = []
        for url in settings.base_urls:
            one = settings.model_copy(update={"base_url": url})
            endpoints.append(Endpoint(url, await stack.enter_async_context(
                openai_client(one, api_key=api_key, http_client=http_client))))
        yield Endpoints(endpoints)


def _default_http_client(timeout_s: float) -> Any:
    """One of the SDK's own HTTP clients. With aiohttp installed (`openai[aiohttp]`) and on asyncio,
    its aiohttp-backed one: about half the CPU per request of its httpx2 one, which is what lets
    one process drive hundreds of requests per second. Either way the concurrency cap bounds the
    connections, and `timeout_s` bounds every wait."""
    if importlib.util.find_spec("aiohttp") is not None and _on_asyncio():
        return openai.DefaultAioHttpClient(timeout=timeout_s)
    return openai.DefaultAsyncHttpxClient(timeout=timeout_s)


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()  # aiohttp runs on asyncio only (not on trio)
        return True
    except RuntimeError:
        return False


def http_client_name() -> str:
    """Which HTTP client an engine without an explicit `http_client` uses (for benchmarks, logs)."""
    return "aiohttp" if importlib.util.find_spec("aiohttp") is not None else "httpx2"


def request_body(request: ChatRequest) -> dict[str, Any]:
    """The JSON body of `request`'s chat completion (plain JSON already: ChatRequest checks)."""
    return {"model": request.model, "messages": request.messages, **request.params}


async def post_chat(client: openai.AsyncOpenAI, body: dict[str, Any]) -> httpx2.Response:
    """POST /chat/completions through the SDK's own request path (its auth, headers, error
    classes), for the HTTP response itself. `chat.completions.create` would first walk every
    parameter through its typed transform and then parse the answer into models, which together
    cost about a fifth of the engine's CPU per request; the body on the wire is the same (a test
    holds it) and the answer is read once, by `read_reply`."""
    return await client.post("/chat/completions", cast_to=httpx2.Response, body=body)
