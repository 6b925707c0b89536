"""The Batch API calls a run makes, each retried like the engine's requests (5xx, 429, timeouts,
lost connections), and the lookup that finds the batch made from an uploaded file when the answer
to its create was lost."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import anyio
import httpx
import openai

from factory.engine import api_key_for, openai_client
from factory.errors import FactoryError, FatalAPIError, SettingsError
from factory.engine.retry import RetryPolicy, classify
from factory.engine.settings import EngineSettings

log = logging.getLogger(__name__)

COMPLETION_WINDOW = "24h"
ENDPOINT = "/v1/chat/completions"
# A batch listed as created this long before its input file's upload cannot have been made from
# it: listing stops there when looking for the batch of a file.
LIST_SLACK_S = 300

T = TypeVar("T")


def batch_client(
    settings: EngineSettings, *, api_key: str | None = None, http_client: httpx.AsyncClient | None = None
) -> AbstractAsyncContextManager[openai.AsyncOpenAI]:
    """The client `run_batch` needs: the engine's (factory.engine.openai_client), with the key from the
    environment (or `.env`) unless one is given."""
    if len(settings.base_urls) > 1:
        raise SettingsError(f"--batch sends to one API, and --base-url names {len(settings.base_urls)}: give one")
    return openai_client(settings, api_key=api_key_for(settings, api_key), http_client=http_client)


class BatchCalls:
    """One run's calls to the Batch API through `client`."""

    def __init__(self, client: openai.AsyncOpenAI, settings: EngineSettings) -> None:
        self.client = client
        self.settings = settings
        self.retry = RetryPolicy(settings.max_attempts)

    async def call(
        self,
        what: str,
        call: Callable[[], Awaitable[T]],
        *,
        before_retry: Callable[[], Awaitable[T | None]] | None = None,
        not_found: str | None = None,
    ) -> T:
        """One API call, retried like the engine's requests (5xx, 429, timeouts, lost connections);
        `before_retry` may find that a lost answer's work was done after all."""
        attempt = 0
        while True:
            attempt += 1
            try:
                with anyio.fail_after(self.settings.timeout_s):
                    return await call()
            except Exception as exc:  # never a cancellation: that is a BaseException
                if isinstance(exc, openai.NotFoundError) and not_found is not None:
                    raise FatalAPIError(f"{what}: not found (404): {not_found}", status=404) from exc
                failure = classify(exc, model="(batch)", base_url=self.settings.base_url)
                if isinstance(failure, FatalAPIError):
                    raise failure from exc
                if not failure.retryable or attempt >= self.settings.max_attempts:
                    raise FactoryError(f"{what} failed after {attempt} attempts: {failure.describe()}") from exc
                delay = self.retry.wait_after(failure, attempt)
                log.debug("%s: attempt %d failed (%s); retrying in %.2fs", what, attempt, failure.describe(), delay)
                await anyio.sleep(delay)
                if before_retry is not None and (found := await before_retry()) is not None:
                    log.info("%s: the lost answer's work was done; using it", what)
                    return found

    async def upload(self, name: str, data: bytes) -> Any:
        return await self.call(
            f"uploading {name}",
            lambda: self.client.files.create(file=(name, data, "application/jsonl"), purpose="batch"),
            not_found="the server has no /v1/files endpoint: the Batch API needs OpenAI or a server that offers it",
        )

    async def create(self, file_id: str, uploaded_at: int, stage: str) -> Any:
        async def lost_answer() -> Any:
            # The create may have reached the server before the connection failed: look first.
            return await self.find_batch(file_id, uploaded_at)

        return await self.call(
            f"creating the batch of {file_id}",
            lambda: self.client.batches.create(input_file_id=file_id, endpoint=ENDPOINT,
                                               completion_window=COMPLETION_WINDOW,
                                               metadata={"created_by": "instruct-factory", "stage": stage[:500]}),
            before_retry=lost_answer,
            not_found="the server has no /v1/batches endpoint, or lost the uploaded file",
        )

    async def find_batch(self, file_id: str, uploaded_at: int) -> Any | None:
        """The batch made from `file_id`, if any (the list is newest first)."""
        async def scan() -> Any | None:
            async for b in self.client.batches.list(limit=100):
                if b.input_file_id == file_id:
                    return b
                if b.created_at < uploaded_at - LIST_SLACK_S:
                    return None
            return None

        return await self.call(f"looking for the batch of {file_id}", scan)
