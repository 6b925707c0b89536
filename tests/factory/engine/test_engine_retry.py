"""What is retried, how long it waits, and what stops a run: `factory.engine.retry`."""

from __future__ import annotations

import email.utils
import random
import time

import anyio
import httpx
import openai
import pytest

from factory.errors import FatalAPIError
from factory.engine.retry import MAX_RETRY_AFTER_S, AttemptFailure, RetryPolicy, classify, parse_retry_after


def status_error(status: int, message: str = "boom", code: str | None = None, headers: dict | None = None) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://fake/v1/chat/completions")
    body = {"error": {"message": message, "type": "x", "param": None, "code": code}}
    response = httpx.Response(status, json=body, headers=headers, request=request)
    return openai.APIStatusError(message, response=response, body=body)


def kind_of(exc: BaseException) -> tuple[str, bool] | str:
    failure = classify(exc, model="gpt-4o", base_url="http://fake/v1")
    return "fatal" if isinstance(failure, FatalAPIError) else (failure.kind, failure.retryable)


@pytest.mark.parametrize(("exc", "expected"), [
    (status_error(401, code="invalid_api_key"), "fatal"),
    (status_error(403), "fatal"),
    (status_error(404, code="model_not_found"), "fatal"),
    (status_error(429, code="insufficient_quota"), "fatal"),
    (status_error(400, code="unsupported_parameter"), "fatal"),
    (status_error(429, "Rate limit reached"), ("rate_limited", True)),
    (status_error(429, "Request too large for gpt-4o on tokens per min (TPM): Limit 30000, Requested 50000."), ("too_large", False)),
    (status_error(408), ("timeout", True)),
    (status_error(409), ("conflict", True)),
    (status_error(500), ("server_error", True)),
    (status_error(503), ("server_error", True)),
    (status_error(400, "context too long", code="context_length_exceeded"), ("bad_request", False)),
    (status_error(422), ("bad_request", False)),
    (TimeoutError(), ("timeout", True)),
    (openai.APIConnectionError(request=httpx.Request("POST", "http://fake")), ("connection", True)),
    (httpx.RemoteProtocolError("peer closed"), ("connection", True)),
])
def test_what_is_retried_and_what_stops_the_run(exc, expected):
    assert kind_of(exc) == expected


def test_a_429_carries_the_servers_wait():
    failure = classify(status_error(429, headers={"retry-after-ms": "1500", "retry-after": "2"}), model="m", base_url="u")
    assert isinstance(failure, AttemptFailure) and failure.retry_after == 1.5


def test_retry_after_in_milliseconds_seconds_or_a_date():
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8 <= parse_retry_after({"retry-after": in_ten}) <= 10
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    policy = RetryPolicy(10, rng=random.Random(0))
    for n, nominal in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)]:
        assert 0.75 * nominal <= policy.backoff(n) <= nominal
    server_asked = AttemptFailure("rate_limited", "x", retryable=True, retry_after=3.0)
    assert 3.0 <= policy.wait_after(server_asked, 1) <= 3.1
    too_long = AttemptFailure("rate_limited", "x", retryable=True, retry_after=3600.0)
    assert policy.wait_after(too_long, 1) <= MAX_RETRY_AFTER_S + 0.1


def _flaky(outcomes: list[BaseException | str]):
    calls = []

    async def attempt() -> str:
        calls.append(len(calls) + 1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return attempt, calls


def _retryable() -> AttemptFailure:
    return AttemptFailure("server_error", "503", retryable=True, status=503)


def test_call_retries_until_success_and_waits_between():
    policy = RetryPolicy(5, initial_s=0.01, max_s=0.01)
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    attempt, calls = _flaky([_retryable(), _retryable(), "ok"])
    assert anyio.run(policy.call, attempt, "req", sleep) == "ok"
    assert calls == [1, 2, 3] and len(waits) == 2


def test_call_gives_up_after_max_attempts_with_the_last_failure():
    policy = RetryPolicy(3, initial_s=0.001)
    attempt, calls = _flaky([_retryable() for _ in range(5)])

    async def sleep(s: float) -> None:
        pass

    with pytest.raises(AttemptFailure, match="503"):
        anyio.run(policy.call, attempt, "req", sleep)
    assert calls == [1, 2, 3]


def test_call_does_not_retry_what_would_fail_again():
    policy = RetryPolicy(5)
    attempt, calls = _flaky([AttemptFailure("bad_request", "no", retryable=False, status=400), "ok"])

    async def sleep(s: float) -> None:
        raise AssertionError("no wait expected")

    with pytest.raises(AttemptFailure, match="no"):
        anyio.run(policy.call, attempt, "req", sleep)
    assert calls == [1]
