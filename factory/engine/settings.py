"""Engine settings, and the TOML + command-line loading that every stage reuses.

A stage's settings are a pydantic model. `load_settings` reads a TOML file (the stage's section, or
the whole file), lays command-line overrides on top, and validates; any mistake becomes one
`SettingsError` line naming the setting and what to change; the run folder's owner
(`schemas.RunFolder.write_config_section`) writes the result to `runs/NAME/config.toml` under the
stage's section. The API key is never a setting: it comes from
the environment (or `.env`) through `resolve_api_key` and is handed to the engine directly.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from factory.errors import SettingsError, register_secret

OPENAI_API_URL = "https://api.openai.com/v1"

S = TypeVar("S", bound=BaseModel)


def _default_base_url() -> str:
    return os.environ.get("OPENAI_BASE_URL") or OPENAI_API_URL


class EngineSettings(BaseModel):
    """How the engine talks to an OpenAI-compatible API. Everything here may be saved; no secrets."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    base_url: str = Field(default_factory=_default_base_url, validate_default=True,
                          description="OpenAI-compatible API root; several, comma-separated, share the requests "
                                      "(several local servers: each gets the next request when it has the fewest in flight)")
    model: str | None = Field(default=None, description="default model of the stage")
    rpm: int | None = Field(default=None, gt=0, description="requests per minute; None: from the server's headers")
    tpm: int | None = Field(default=None, gt=0, description="tokens per minute; None: from the server's headers")
    tpm_accounting: Literal["reserve", "actual"] = Field(
        default="reserve",
        description="how the server counts a request against TPM: reserve (prompt + max_tokens, as OpenAI) "
                    "or actual (prompt + the answer's tokens, as some local servers)",
    )
    max_concurrency: int = Field(
        default=256, ge=1, le=4096,
        description="most requests in flight at once; from 32 (or this, if lower) the number grows while "
                    "the rate limits have room, and halves on a 429",
    )
    timeout_s: float = Field(default=300.0, gt=0, description="limit for one HTTP attempt, connect to last byte")
    max_attempts: int = Field(default=6, ge=1, le=100, description="attempts per request, the first included")
    max_cost: float | None = Field(default=None, gt=0, description="hard budget in USD; None: no budget")
    prices_file: Path | None = Field(default=None, description="TOML price table laid over the shipped one")
    price_input: float | None = Field(default=None, ge=0, description="USD per 1M input tokens, for every model")
    price_output: float | None = Field(default=None, ge=0, description="USD per 1M output tokens, for every model")
    progress: bool = Field(default=True, description="live progress line on stderr")
    drain_timeout_s: float = Field(default=30.0, ge=0, description="grace for in-flight requests after Ctrl-C")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        urls = [u.strip().rstrip("/") for u in v.split(",") if u.strip()]
        for url in urls or [v]:
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ValueError(f"must be an http(s) URL such as {OPENAI_API_URL} (or several, comma-separated), "
                                 f"got {url!r}")
        if len(set(urls)) != len(urls):
            raise ValueError(f"names an endpoint twice: {v!r}")
        return ",".join(urls)

    @property
    def base_urls(self) -> list[str]:
        """Every endpoint the requests are spread over (usually one)."""
        return self.base_url.split(",")

    @field_validator("prices_file")
    @classmethod
    def _file_exists(cls, v: Path | None) -> Path | None:
        if v is not None and not Path(v).is_file():
            raise ValueError(f"no such file: {v}")
        return v

    @property
    def is_openai(self) -> bool:
        return all(urlparse(u).hostname == "api.openai.com" for u in self.base_urls)

    @property
    def is_local(self) -> bool:
        """A server on this machine or a private network (a local vLLM, the simulator), where an
        API key is often not needed: loopback or private addresses, and names without a domain."""
        return all(_is_local_host(urlparse(u).hostname or "") for u in self.base_urls)


def _is_local_host(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host or host.endswith((".localhost", ".local", ".internal", ".lan"))
    return address.is_loopback or address.is_private or address.is_link_local


# ---------------------------------------------------------------------------------------------
# Loading and saving, generic over the stage's settings model.


def load_settings(
    toml_path: str | Path | None,
    overrides: dict[str, Any],
    *,
    model: type[S] = EngineSettings,  # type: ignore[assignment]
    section: str | None = "engine",
    section_only: bool = False,
    given_as: str = "command line",
) -> S:
    """Settings from `toml_path` (its `[section]` table if it has one, else its top level, unless
    `section_only`: a file shared by several stages, whose other keys are not this stage's), then
    `overrides` (None values are skipped: an option not given on the command line). `given_as`
    names where the overrides came from in an error ("command line", or the Python API's call).
    """
    data: dict[str, Any] = {}
    where = "defaults"
    if toml_path is not None:
        path = Path(toml_path)
        try:
            with path.open("rb") as f:
                doc = tomllib.load(f)
        except FileNotFoundError:
            raise SettingsError(f"settings file not found: {path}") from None
        except tomllib.TOMLDecodeError as e:
            raise SettingsError(f"{path}: not valid TOML: {e}") from None
        if section is not None and isinstance(doc.get(section), dict):
            data = dict(doc[section])
            where = f"{path} [{section}]"
        elif not section_only:
            data = {k: v for k, v in doc.items() if not isinstance(v, dict)}
            where = str(path)
    given = {k: v for k, v in overrides.items() if v is not None}
    data.update(given)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise SettingsError(_describe(e, where, set(given), given_as)) from None


def _describe(e: ValidationError, where: str, from_cli: set[str], given_as: str = "command line") -> str:
    parts = []
    for err in e.errors():
        name = ".".join(str(p) for p in err["loc"]) or "settings"
        origin = given_as if name.split(".")[0] in from_cli else where
        msg = "unknown setting (check its spelling)" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{name}: {msg} (from {origin})")
    return "invalid settings: " + "; ".join(parts)


GIVEN_AS = "the call"  # where the Python API's keyword arguments come from, in a settings error


def settings_from(model: type[Any], given: Any, config: Path | None, section: str, section_only: bool,
              overrides: dict[str, Any]) -> Any:
    """`given` (a settings object) or the `[section]` of `config`, with `overrides` on top, validated
    as the command validates its flags."""
    if given is not None:
        if not isinstance(given, model):
            raise SettingsError(f"expected {model.__name__} settings, got a {type(given).__name__}")
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if not overrides:
            return given
        return load_settings(None, {**given.model_dump(), **overrides}, model=model, section=None, given_as=GIVEN_AS)
    return load_settings(config, overrides, model=model, section=section, section_only=section_only, given_as=GIVEN_AS)


# ---------------------------------------------------------------------------------------------
# The API key: from the environment or a .env file; never a setting, never saved.


def resolve_api_key(env_file: str | Path = ".env") -> str | None:
    """OPENAI_API_KEY from the environment, else from `env_file` (not loaded into os.environ)."""
    key = os.environ.get("OPENAI_API_KEY")
    if not key and Path(env_file).is_file():
        from dotenv import dotenv_values

        key = dotenv_values(env_file).get("OPENAI_API_KEY")
    key = (key or "").strip() or None
    register_secret(key)
    return key


# ---------------------------------------------------------------------------------------------
# Command-line flags shared by every command that runs the engine (generate, judge, send...).

_CLI_FIELDS: dict[str, str] = {
    "base_url": "base_url",
    "model": "model",
    "rpm": "rpm",
    "tpm": "tpm",
    "tpm_accounting": "tpm_accounting",
    "max_concurrency": "max_concurrency",
    "timeout": "timeout_s",
    "max_attempts": "max_attempts",
    "max_cost": "max_cost",
    "prices": "prices_file",
    "price_input": "price_input",
    "price_output": "price_output",
}


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """The engine's flags. Defaults are None so that the TOML file's values are not overridden."""
    g = parser.add_argument_group("engine (override the [engine] section of --config)")
    g.add_argument("--config", type=Path, help="TOML settings file ([engine] section or top level)")
    g.add_argument("--base-url", help="OpenAI-compatible API root (default: $OPENAI_BASE_URL or OpenAI)")
    g.add_argument("--model", help="model name, e.g. gpt-4o-mini")
    g.add_argument("--rpm", type=int, help="requests per minute allowed")
    g.add_argument("--tpm", type=int, help="tokens per minute allowed")
    g.add_argument("--tpm-accounting", choices=("reserve", "actual"),
                   help="how the server counts TPM: reserve = prompt + max_tokens, as OpenAI (default); "
                        "actual = only the tokens used, as some local servers")
    g.add_argument("--max-concurrency", type=int,
                   help="most requests in flight (default 256; it starts at 32 and grows while the limits have room)")
    g.add_argument("--timeout", type=float, help="seconds allowed for one HTTP attempt")
    g.add_argument("--max-attempts", type=int, help="attempts per request, the first included")
    g.add_argument("--max-cost", type=float, help="hard budget in USD (never exceeded)")
    g.add_argument("--prices", type=Path, help="TOML price table laid over the shipped one")
    g.add_argument("--price-input", type=float, help="USD per 1M input tokens (overrides the table)")
    g.add_argument("--price-output", type=float, help="USD per 1M output tokens (overrides the table)")
    g.add_argument("--no-progress", action="store_true", help="no live progress line")


def engine_settings_from_args(args: argparse.Namespace) -> EngineSettings:
    overrides = {field: getattr(args, flag, None) for flag, field in _CLI_FIELDS.items()}
    if getattr(args, "no_progress", False):
        overrides["progress"] = False
    return load_settings(getattr(args, "config", None), overrides)
