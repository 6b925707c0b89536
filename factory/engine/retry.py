"""What went wrong with one attempt, and whether and when to try again.

`classify` is the one place where exceptions of the `openai` SDK, `httpx` and anyio's timeout
are translated: into an `AttemptFailure` (this attempt failed; `retryable` says whether another
may succeed) or a `FatalAPIError` (every request would fail the same way: stop the run).

Retried, as openai-python does: 408, 409, 429, 5xx, timeouts, connection errors, and bodies that
cannot be read. Waits are exponential with jitter, or the server's `retry-after-ms` /
`Retry-After` when it gives one. `RetryPolicy.call` runs the attempts: the retries in tenacity's
`AsyncRetrying` loop, with a debug log line at every decision.
"""

from __future__ import annotations

import email.utils
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlparse

import httpx
import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from factory.errors import FatalAPIError, redact
from schemas import Usage

log = logging.getLogger(__name__)

T = TypeVar("T")

INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
# A server-directed wait longer than this is capped (openai-python gives up beyond 60 s; a
# data-generation run would rather keep going at a slower pace).
MAX_RETRY_AFTER_S = 60.0
# When a 429 carries no retry-after, everyone pauses this long.
DEFAULT_RATE_LIMIT_PAUSE_S = 1.0

# 400-class codes that every request of the run would get again: stop at once.
FATAL_CODES = frozenset(
    {"invalid_api_key", "model_not_found", "unsupported_parameter", "unsupported_value", "insufficient_quota"}
)


class AttemptFailure(Exception):
    """One attempt failed. `kind`: rate_limited, server_error, timeout, connection, unreachable
    (refused, or the host does not resolve), malformed, conflict, too_large, bad_request. `usage` is set when the failed answer was billed."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        usage: Usage | None = None,
        headers: Mapping[str, str] | None = None,
        maybe_billed: bool = False,
    ) -> None:
        super().__init__(redact(message))
        self.kind = kind
        self.retryable = retryable
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.usage = usage
        self.headers = headers
        # The request reached the server and no answer came back: it may have been billed.
        self.maybe_billed = maybe_billed
        self.repeated = False  # the server gave this request the same answer often enough: not retried

    @property
    def message(self) -> str:
        return str(self)

    def describe(self) -> str:
        where = f"HTTP {self.status}" if self.status else self.kind
        code = f" {self.code}" if self.code else ""
        return f"{where}{code}: {self}"


class MalformedResponse(Exception):
    """A 200 answer whose body is not a chat completion. `usage` if it still carried one."""

    def __init__(self, message: str, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.usage = usage


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the server asks us to wait: `retry-after-ms`, else `retry-after` (seconds or an
    HTTP date). None when absent or unreadable."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return max(0.0, email.utils.mktime_tz(parsed) - time.time())


def _error_code(body: object) -> str | None:
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("code") is not None:
            return str(err["code"])
    return None


def _unreachable(exc: BaseException, base_url: str) -> str | None:
    """What stopped the connection before anything was sent, from the exception's causes: a refused
    connection or a host name that does not resolve. (The SDK's aiohttp client reports both as a
    timeout, its httpx client as a connection error.) None: something else."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            host = urlparse(base_url).hostname or base_url
            return f"cannot resolve {host} (from --base-url {base_url}): check the host name"
        if isinstance(current, ConnectionRefusedError):
            return f"connection refused at {base_url}: nothing listens there; start the server or fix --base-url"
        current = current.__cause__ or current.__context__
    return None


def classify(exc: BaseException, *, model: str, base_url: str) -> AttemptFailure | FatalAPIError:
    """Translate an exception raised by one attempt (never a cancellation) into our tree."""
    if isinstance(exc, AttemptFailure | FatalAPIError):
        return exc
    if (unreachable := _unreachable(exc, base_url)) is not None:
        # Nothing reached the server, so nothing was billed.
        return AttemptFailure("unreachable", unreachable, retryable=True)
    if isinstance(exc, MalformedResponse):
        # A 200 answer: the tokens were generated, so without usage it may well have been billed.
        return AttemptFailure(
            "malformed", f"unreadable answer: {exc}", retryable=True, usage=exc.usage, maybe_billed=exc.usage is None
        )
    if isinstance(exc, TimeoutError | openai.APITimeoutError | httpx.TimeoutException):
        return AttemptFailure("timeout", "no answer within the timeout", retryable=True, maybe_billed=True)
    if isinstance(exc, openai.APIStatusError):
        return _classify_status(exc, model=model, base_url=base_url)
    if isinstance(exc, openai.APIResponseValidationError):
        return AttemptFailure("malformed", f"unreadable answer: {exc}", retryable=True, maybe_billed=True)
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError | ConnectionError):
        cause = exc.__cause__ or exc
        return AttemptFailure(
            "connection", f"connection failed ({type(cause).__name__}: {cause})", retryable=True, maybe_billed=True
        )
    if isinstance(exc, ValueError):  # a JSON body cut short, from the SDK's parser
        return AttemptFailure("malformed", f"unreadable answer: {exc}", retryable=True, maybe_billed=True)
    raise exc  # a bug of ours or the SDK's: let it surface with its traceback


def _classify_status(exc: openai.APIStatusError, *, model: str, base_url: str) -> AttemptFailure | FatalAPIError:
    status = exc.status_code
    code = _error_code(exc.body)
    headers = exc.response.headers
    said = redact(exc.message)
    if status == 401 or code == "invalid_api_key":
        return FatalAPIError(
            f"the API rejected the key ({status}): set OPENAI_API_KEY to a valid key for {base_url} (server said: {said})",
            status=status, code=code,
        )
    if status == 403:
        return FatalAPIError(
            f"the API refused access (403) to model {model!r}: check that the key's project may use it "
            f"(server said: {said})",
            status=status, code=code,
        )
    if status == 404 or code == "model_not_found":
        return FatalAPIError(
            f"not found ({status}): model {model!r} does not exist or the key has no access to it, "
            f"or the base URL {base_url} is wrong (server said: {said})",
            status=status, code=code,
        )
    if status == 429 and code == "insufficient_quota":
        return FatalAPIError(
            f"the account is out of quota (429 insufficient_quota): check the plan and billing (server said: {said})",
            status=status, code=code,
        )
    if status == 429 and "too large" in said.lower():
        # The request alone exceeds a per-minute limit: waiting cannot help it.
        return AttemptFailure("too_large", said, retryable=False, status=status, code=code, headers=headers)
    if status == 429:
        return AttemptFailure(
            "rate_limited", said, retryable=True, status=status, code=code,
            retry_after=parse_retry_after(headers), headers=headers,
        )
    if status in (408, 409):
        kind = "timeout" if status == 408 else "conflict"
        return AttemptFailure(kind, said, retryable=True, status=status, code=code,
                              retry_after=parse_retry_after(headers), headers=headers)
    if status >= 500:
        return AttemptFailure("server_error", said, retryable=True, status=status, code=code,
                              retry_after=parse_retry_after(headers), headers=headers)
    if code in FATAL_CODES:
        return FatalAPIError(
            f"the API refuses every request like this ({status} {code}) for model {model!r}: {said}",
            status=status, code=code,
        )
    return AttemptFailure("bad_request", said, retryable=False, status=status, code=code, headers=headers)


class RetryPolicy:
    """How many attempts, and how long to wait between them."""

    def __init__(
        self,
        max_attempts: int,
        *,
        initial_s: float = INITIAL_BACKOFF_S,
        max_s: float = MAX_BACKOFF_S,
        rng: random.Random | None = None,
    ) -> None:
        self.max_attempts = max_attempts
        self.initial_s = initial_s
        self.max_s = max_s
        self._rng = rng or random.Random()

    def backoff(self, attempt_number: int) -> float:
        """Exponential from 0.5 s, capped at 8 s, minus up to 25 % jitter (as openai-python)."""
        delay = min(self.initial_s * 2.0 ** (attempt_number - 1), self.max_s)
        return delay * (1.0 - 0.25 * self._rng.random())

    def wait_after(self, failure: AttemptFailure, attempt_number: int) -> float:
        """The server's retry-after when it gave one (capped, plus a little jitter so that the
        requests it paused do not all return in the same instant), else the backoff."""
        if failure.retry_after is not None:
            return min(failure.retry_after, MAX_RETRY_AFTER_S) + 0.1 * self._rng.random()
        return self.backoff(attempt_number)

    async def call(self, attempt: Callable[[], Awaitable[T]], label: str, sleep: Callable[[float], Awaitable[Any]]) -> T:
        """`attempt()` until it succeeds or the policy gives up, re-raising the last failure.

        The first call is made directly: most requests need no other, and tenacity's bookkeeping
        would cost about a tenth of the engine's CPU per request. A retryable failure hands over
        to tenacity's loop (`retrying`) for attempts 2 and on.
        """
        try:
            return await attempt()
        except AttemptFailure as failure:
            if not failure.retryable or self.max_attempts < 2:
                log.debug("%s: %s is not retried", label, failure.describe())
                raise
            delay = self.wait_after(failure, 1)
            self._log_retry(label, 1, failure, delay)
        await sleep(delay)
        async for state in self.retrying(label, sleep, first_attempt=2):
            with state:
                result = await attempt()
        return result

    def retrying(self, label: str, sleep: Callable[[float], Awaitable[Any]], *, first_attempt: int = 1) -> AsyncRetrying:
        """Tenacity's attempt loop, numbering attempts from `first_attempt`. `sleep` may return
        early when the run stops."""
        offset = first_attempt - 1

        def wait(state: RetryCallState) -> float:
            failure = state.outcome.exception() if state.outcome else None
            assert isinstance(failure, AttemptFailure)
            return self.wait_after(failure, state.attempt_number + offset)

        def before_sleep(state: RetryCallState) -> None:
            failure = state.outcome.exception() if state.outcome else None
            self._log_retry(label, state.attempt_number + offset, failure, state.upcoming_sleep)

        def retryable(exc: BaseException) -> bool:
            ok = isinstance(exc, AttemptFailure) and exc.retryable
            if not ok and isinstance(exc, AttemptFailure):
                log.debug("%s: %s is not retried", label, exc.describe())
            return ok

        return AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts - offset),
            retry=retry_if_exception(retryable),
            wait=wait,
            sleep=sleep,
            before_sleep=before_sleep,
            reraise=True,
        )

    def _log_retry(self, label: str, attempt_number: int, failure: BaseException | None, delay: float) -> None:
        log.debug(
            "%s: attempt %d/%d failed (%s); retrying in %.2fs%s",
            label, attempt_number, self.max_attempts,
            failure.describe() if isinstance(failure, AttemptFailure) else failure, delay,
            " (server's retry-after)" if isinstance(failure, AttemptFailure) and failure.retry_after else "",
        )
