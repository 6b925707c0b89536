"""The API key reaches no file of the run folder and no log line, even when a server echoes it."""

from __future__ import annotations

import logging

import pytest
from engine_fakes import FakeAPI, request, run

from factory.errors import FatalAPIError, SecretFilter, redact, register_secret
from factory.engine.settings import EngineSettings
from schemas import RunFolder, RunFolderError

SECRET = "sk-proj-SeCrEt012345"


def _echo_the_key(api: FakeAPI, call):
    """A careless server that quotes the key back in errors and answers."""
    if call.prompt == "question 1" and call.attempt == 0:
        return api.error(503, f"overloaded while serving key {SECRET}")
    if call.prompt == "question 2":
        return api.error(400, f"invalid request for key {SECRET}")
    return api.ok(call, headers={"x-debug-key": SECRET})


def test_the_key_is_in_no_file_and_no_log_line(make_engine, run_dir, caplog):
    caplog.set_level(logging.DEBUG)  # every logger: ours, openai's, httpx's
    fake = FakeAPI(_echo_the_key, key=SECRET)
    engine = make_engine(fake, api_key=SECRET)
    stats, results = run(engine, [request(i) for i in range(5)])
    RunFolder(run_dir).write_config_section("engine", engine.settings)

    assert stats.done == 4 and stats.failed == 1  # the run really went through the echoing paths
    assert any(c.headers["authorization"] == f"Bearer {SECRET}" for c in fake.calls)  # the key was used
    assert caplog.records, "expected DEBUG log lines to check"
    for record in caplog.records:
        assert SECRET not in record.getMessage()
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"ledger.sqlite", "config.toml"}
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    failed = next(r for r in results if not r.ok)
    assert SECRET not in failed.call.error and "***" in failed.call.error


def test_a_rejected_key_is_not_quoted_in_the_error(make_engine):
    fake = FakeAPI(key="sk-right-key-0000000")
    with pytest.raises(FatalAPIError) as caught:
        run(make_engine(fake, api_key=SECRET), [request(1)])
    assert SECRET not in str(caught.value) and SECRET[-4:] not in str(caught.value)


def test_redaction_covers_registered_secrets_and_key_shaped_text():
    register_secret("plain-secret-value")
    assert redact("a plain-secret-value b") == "a *** b"
    assert redact("key sk-abc123def456 used") == "key *** used"
    assert redact("Authorization: Bearer abc.def") == "Authorization: ***"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key=%s", ("sk-live-999999",), None)
    SecretFilter().filter(record)
    assert record.getMessage() == "key=***"


def test_settings_hold_no_key_and_saving_refuses_secret_fields(run_dir):
    from pydantic import BaseModel, SecretStr

    assert not any("key" in name for name in EngineSettings.model_fields)

    class Leaky(BaseModel):
        api_key: SecretStr

    with pytest.raises(RunFolderError, match="secret"):
        RunFolder(run_dir).write_config_section("leaky", Leaky(api_key=SecretStr("x")))
