"""The data factory: async LLM engine, simulator, recipes, dedup, cost. Imports `schemas` only.

The Python API (factory/api.py): `factory.generate(run, recipe=..., seeds=..., n=..., model=...)`,
`factory.generate_async`, `factory.examples(run)` and `factory.rejected(run)` (polars DataFrames), and
`factory.export(run, format=..., out=...)` (the kept examples for other trainers, with a dataset card).
They load on first use, so that `import factory.engine` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from factory.api import (
        ExportResult,
        GenerationOutcome,
        GenerationPlan,
        StageProjection,
        examples,
        export,
        generate,
        generate_async,
        rejected,
    )
    from factory.errors import ExportError, FactoryError, FatalAPIError, SettingsError

__all__ = ["ExportError", "ExportResult", "FactoryError", "FatalAPIError", "GenerationOutcome", "GenerationPlan",
           "SettingsError", "StageProjection", "examples", "export", "generate", "generate_async", "rejected"]


def __getattr__(name: str) -> Any:
    if name in ("ExportError", "FactoryError", "FatalAPIError", "SettingsError"):
        from factory import errors

        return getattr(errors, name)
    if name in __all__:
        from factory import api

        return getattr(api, name)
    raise AttributeError(f"module 'factory' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})  # the API's names for tab completion, before their first use
