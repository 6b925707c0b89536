"""The factory's exception tree. Every error a user can act on is one of these, or one of the errors
the packages share (schemas.errors); `python -m factory` prints its message as one line and exits 2.

    schemas.UserError
      SettingsError            a setting missing or invalid (schemas'; the trainer raises it too)
        PriceUnknownError      a budget was set but a model has no known price
        TemplateError          a prompt template that cannot be used
      FactoryError
        RequestError           a ChatRequest that cannot be sent as it is
        FatalAPIError          the API refused in a way every further request would repeat
        SeedFileError          a seed, keyword or evaluation file that cannot be used
        ImportFormatError      an input file of `import` that is not instruction data
        NaverError             the Naver Search API refused or failed
          NaverQuotaExceeded   today's quota of calls is used up
        BatchBudgetError       a batch's worst case does not fit --max-cost
        BatchFailedError       the API refused a whole batch
        ReportError            a run folder the cost report cannot read
        ExportError            an export that cannot be written as asked (format, path, selection, run)

Errors from the `openai` SDK and `httpx` are translated into this tree at one place
(`factory.engine.retry.classify`), so the rest of the engine never sees a transport exception.
Every message is redacted (schemas.errors.redact): no key reaches an error line.
"""

from __future__ import annotations

from typing import Any

from schemas import SecretFilter, SettingsError, UserError, redact, register_secret


class FactoryError(UserError):
    """An error the user can fix; the message says what to change."""

    stats: Any = None  # the run's RunStats, when Engine.run raised it after draining


class PriceUnknownError(FactoryError, SettingsError):
    """A budget was set but a model has no known price."""


class TemplateError(FactoryError, SettingsError):
    """A prompt template that cannot be used; the message names the file and what to fix."""


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


class SeedFileError(FactoryError):
    """A seed, keyword or evaluation file that cannot be used as it is."""


class ImportFormatError(FactoryError):
    """An input file that cannot be read as instruction data; the message names file and line."""


class NaverError(FactoryError):
    """The Naver Search API refused or failed; the message says what to change."""


class NaverQuotaExceeded(NaverError):
    """Today's quota of calls is used up."""


class BatchBudgetError(FactoryError):
    """The worst case of the batch does not fit `--max-cost`: nothing was submitted.
    `too_small`: not even one request fits an unspent budget, so no rerun can continue."""

    def __init__(self, message: str, *, too_small: bool = False) -> None:
        super().__init__(message)
        self.too_small = too_small


class BatchFailedError(FactoryError):
    """The API refused a whole batch (its input file failed validation)."""


class ReportError(FactoryError):
    """A run folder the report cannot read; the message says what to do."""


class ExportError(FactoryError):
    """An export that cannot be written as asked: an unknown format, an output that exists, a run with
    nothing kept, an empty selection. Nothing was written."""


__all__ = [
    "BatchBudgetError", "BatchFailedError", "ExportError", "FactoryError", "FatalAPIError", "ImportFormatError",
    "NaverError", "NaverQuotaExceeded", "PriceUnknownError", "ReportError", "RequestError", "SecretFilter",
    "SeedFileError", "SettingsError", "TemplateError", "UserError", "redact", "register_secret",
]
