"""Settings: TOML + command-line overrides, validated with messages that say what to change;
the resolved settings saved per stage in the run folder; the key only from the environment."""

from __future__ import annotations

import argparse

import pytest
from pydantic import BaseModel

from factory.errors import SettingsError
from factory.engine.settings import (
    OPENAI_API_URL,
    EngineSettings,
    add_engine_arguments,
    engine_settings_from_args,
    load_settings,
    resolve_api_key,
)


def test_defaults_point_at_openai_unless_the_environment_says_otherwise(monkeypatch):
    assert EngineSettings().base_url == OPENAI_API_URL and EngineSettings().is_openai
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8800/v1/")
    assert EngineSettings().base_url == "http://127.0.0.1:8800/v1" and not EngineSettings().is_openai


def test_a_toml_section_then_overrides(tmp_path):
    config = tmp_path / "factory.toml"
    config.write_text('[engine]\nmodel = "gpt-4o-mini"\nrpm = 500\ntpm = 200000\n[generate]\nn = 10\n')
    s = load_settings(config, {"rpm": 100, "tpm": None})
    assert (s.model, s.rpm, s.tpm) == ("gpt-4o-mini", 100, 200000)


def test_a_file_without_the_section_is_read_from_its_top_level(tmp_path):
    config = tmp_path / "engine.toml"
    config.write_text('max_concurrency = 4\n')
    assert load_settings(config, {}).max_concurrency == 4


@pytest.mark.parametrize(("toml", "overrides", "complaint"), [
    ("[engine]\nrmp = 5\n", {}, "rmp: unknown setting (check its spelling) (from"),
    ("", {"max_concurrency": 0}, "max_concurrency: Input should be greater than or equal to 1 (from command line)"),
    ("[engine]\nmax_cost = -1\n", {}, "max_cost: Input should be greater than 0"),
    ("[engine]\nbase_url = \"ftp://x\"\n", {}, "must be an http(s) URL"),
    ("[engine]\nprices_file = \"/no/such/prices.toml\"\n", {}, "no such file"),
])
def test_a_wrong_setting_is_one_clear_error(tmp_path, toml, overrides, complaint):
    config = tmp_path / "c.toml"
    config.write_text(toml)
    with pytest.raises(SettingsError, match="invalid settings") as caught:
        load_settings(config, overrides)
    assert complaint in str(caught.value)


def test_a_missing_or_broken_file_is_named(tmp_path):
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.toml", {})
    broken = tmp_path / "broken.toml"
    broken.write_text("[engine\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(broken, {})


def test_another_stage_reuses_the_loaders(tmp_path):
    class TrainSettings(BaseModel):
        lr: float = 1e-4
        epochs: int = 1

    config = tmp_path / "c.toml"
    config.write_text("[train]\nlr = 0.001\n")
    s = load_settings(config, {"epochs": 3}, model=TrainSettings, section="train")
    assert (s.lr, s.epochs) == (0.001, 3)


def test_the_command_line_flags_map_onto_the_settings(tmp_path):
    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    config = tmp_path / "c.toml"
    config.write_text("[engine]\nrpm = 500\nmodel = \"gpt-4o\"\n")
    args = parser.parse_args(["--config", str(config), "--tpm", "9000", "--timeout", "30", "--max-cost", "2.5",
                              "--price-input", "1", "--price-output", "2", "--no-progress"])
    s = engine_settings_from_args(args)
    assert (s.rpm, s.tpm, s.timeout_s, s.max_cost, s.price_input, s.price_output, s.progress, s.model) == (
        500, 9000, 30.0, 2.5, 1.0, 2.0, False, "gpt-4o")


def test_the_key_comes_from_the_environment_or_a_dotenv(tmp_path, monkeypatch):
    assert resolve_api_key(tmp_path / ".env") is None
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-from-dotenv-0000\n")
    assert resolve_api_key(tmp_path / ".env") == "sk-from-dotenv-0000"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-1111")
    assert resolve_api_key(tmp_path / ".env") == "sk-from-env-1111"


def test_the_engine_refuses_to_talk_to_openai_without_a_key(ledger, tmp_path, monkeypatch):
    from factory.engine import Engine

    monkeypatch.chdir(tmp_path)  # no .env here
    with pytest.raises(SettingsError, match="no API key for https://api.openai.com/v1: set OPENAI_API_KEY"):
        Engine(EngineSettings(), ledger)
