"""The factory's exception tree, and the redaction every error text passes through.

`FactoryError` is what a user can act on: the CLI prints its message as one line and exits 2.
Errors from the `openai` SDK and `httpx` are translated into this tree at one place
(`factory.engine.retry.classify`), so the rest of the engine never sees a transport exception.
"""

from __future__ import annotations

import logging
import re
from typing import Any

_SECRETS: set[str] = set()
# OpenAI keys ("sk-...", "sk-proj-...") and bearer tokens; servers echo a masked key in 401 bodies.
_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{4,}|Bearer\s+\S+)")


def register_secret(secret: str | None) -> None:
    """Remember a secret (the API key) so that `redact` removes it from any text."""
    if secret and len(secret) >= 4:
        _SECRETS.add(secret)


def redact(text: str) -> str:
    """`text` without any registered secret or anything shaped like an API key."""
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return _KEY_PATTERN.sub("***", text)


class SecretFilter(logging.Filter):
    """Redacts secrets from log records (installed on the CLI's handler as a safety net)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class FactoryError(Exception):
    """An error the user can fix; the message says what to change."""

    stats: Any = None  # the run's RunStats, when Engine.run raised it after draining

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class SettingsError(FactoryError):
    """A setting is missing or invalid (checked before any request is sent)."""


class PriceUnknownError(SettingsError):
    """A budget was set but a model has no known price."""


class RequestError(FactoryError):
    """A `ChatRequest` that cannot be sent as it is (e.g. no max_tokens)."""


class FatalAPIError(FactoryError):
    """The API refused in a way that every further request would repeat (bad key, unknown model...).

    The whole run stops: in-flight requests drain, nothing further is sent.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
