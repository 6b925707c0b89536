"""The root of every package's exception tree, and the redaction every error text passes through.

`UserError` is what a user can act on: its message says what to change, and each package's
`__main__` prints it as one line and exits 2 (no traceback). Each package roots its own tree here
(`factory.errors.FactoryError`, `trainer.errors.TrainerError`, `judge.errors.JudgeError`); the
errors that several packages raise live here once:

    UserError
      SettingsError     a setting missing or invalid, found before anything is sent or loaded
      AnswerError       an answering run that cannot go on as asked (trainer's and judge's answer commands)
      RunFolderError    a run-folder file to fix (schemas/run.py)
      JsonlError        a line that is not a valid record (schemas/jsonl.py)
      EvalSetError      an evaluation set that cannot be read (schemas/evalset.py)

Every message is redacted: a registered secret (the API key) or anything shaped like an OpenAI key
or a bearer token becomes `***`, so no error line can leak one.
"""

from __future__ import annotations

import logging
import re

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
    """Redacts secrets from log records (installed on the command line's handler as a safety net)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class UserError(Exception):
    """An error the user can fix; the message says what to change."""

    def __init__(self, message: str = "") -> None:
        super().__init__(redact(str(message)))


class SettingsError(UserError, ValueError):
    """A setting is missing or invalid (checked before any request is sent or any model loads)."""


class AnswerError(UserError):
    """An answering run that cannot go on as asked: no model, no questions, an unreadable file."""


class RunFolderError(UserError, ValueError):
    """A file of the run folder that cannot be read or written as it is: the message says what to fix."""


class JsonlError(UserError, ValueError):
    """A line that is not a valid record (not a torn tail): names the file and the line."""


class EvalSetError(UserError, ValueError):
    """An evaluation set that cannot be read: names the file and the line."""


__all__ = ["AnswerError", "EvalSetError", "JsonlError", "RunFolderError", "SecretFilter", "SettingsError",
           "UserError", "redact", "register_secret"]
