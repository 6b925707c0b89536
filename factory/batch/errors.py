"""The errors the Batch API path raises beyond the engine's (factory.errors)."""

from __future__ import annotations

from factory.errors import FactoryError


class BatchBudgetError(FactoryError):
    """The worst case of the batch does not fit `--max-cost`: nothing was submitted."""


class BatchFailedError(FactoryError):
    """The API refused a whole batch (its input file failed validation)."""
