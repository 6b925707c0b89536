"""The errors the Batch API path raises beyond the engine's (factory.errors)."""

from __future__ import annotations

from factory.errors import FactoryError


class BatchBudgetError(FactoryError):
    """The worst case of the batch does not fit `--max-cost`: nothing was submitted.
    `too_small`: not even one request fits an unspent budget, so no rerun can continue."""

    def __init__(self, message: str, *, too_small: bool = False) -> None:
        super().__init__(message)
        self.too_small = too_small


class BatchFailedError(FactoryError):
    """The API refused a whole batch (its input file failed validation)."""
