"""A server that cannot be reached says so at once, with the fix; a key is required off this machine."""

from __future__ import annotations

import socket

import openai
import pytest
from engine_fakes import request, run

from factory.engine import Engine
from factory.engine.ledger import Ledger
from factory.engine.settings import EngineSettings
from factory.errors import FatalAPIError, SettingsError


def _closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The SDK's two HTTP clients report a refused connection differently (aiohttp's as a timeout).
CLIENTS = {"aiohttp (default)": lambda: None, "httpx": lambda: openai.DefaultAsyncHttpxClient(timeout=60)}


def _engine(url: str, ledger: Ledger, client_name: str) -> Engine:
    # A long timeout and many attempts: had the refusal been taken for a timeout and retried, the
    # run would make six attempts per request over tens of seconds.
    settings = EngineSettings(base_url=url, timeout_s=60, max_attempts=6, progress=False)
    return Engine(settings, ledger, api_key="sk-test-0123456789ab", http_client=CLIENTS[client_name]())


@pytest.mark.parametrize("client_name", sorted(CLIENTS))
def test_a_refused_connection_stops_the_run_at_the_first_attempt(ledger, client_name):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    with pytest.raises(FatalAPIError) as caught:
        run(_engine(url, ledger, client_name), [request(i) for i in range(20)])
    message = str(caught.value)
    assert f"connection refused at {url}" in message and "start the server or fix --base-url" in message
    assert "timeout" not in message
    stats = caught.value.stats
    assert stats.sent == 1 and stats.retries == 0  # the probe alone, not retried
    assert stats.cost_usd == 0.0  # nothing reached a server: nothing counts against the budget


@pytest.mark.parametrize("client_name", sorted(CLIENTS))
def test_a_host_that_does_not_resolve_is_named(ledger, client_name, monkeypatch):
    real = socket.getaddrinfo

    def resolver(host, *args, **kwargs):  # no DNS server is asked: the lookup fails as it would
        if host == "api.no-such-host.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    with pytest.raises(FatalAPIError, match=r"cannot resolve api\.no-such-host\.invalid") as caught:
        run(_engine("http://api.no-such-host.invalid/v1", ledger, client_name), [request(i) for i in range(20)])
    assert caught.value.stats.sent == 1


def test_no_key_for_a_server_off_this_machine_is_refused_before_sending(ledger):
    settings = EngineSettings(base_url="https://llm.example.com/v1", progress=False)
    with pytest.raises(SettingsError, match="no API key for https://llm.example.com/v1: set OPENAI_API_KEY"):
        Engine(settings, ledger)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "http://localhost:8000/v1", "http://10.0.0.5/v1",
                                 "http://vllm:8000/v1", "http://[::1]:8000/v1"])
def test_a_local_server_needs_no_key(ledger, url):
    assert EngineSettings(base_url=url).is_local
    Engine(EngineSettings(base_url=url, progress=False), ledger)  # no error


@pytest.mark.parametrize("url", ["https://api.openai.com/v1", "https://llm.example.com/v1", "http://8.8.8.8/v1"])
def test_a_remote_server_is_not_local(url):
    assert not EngineSettings(base_url=url).is_local
