"""The Python API's names (`factory.generate`, `trainer.train`, `judge.report`, ...) stay what they
are once every module is imported: a submodule of the same name would replace the function as an
attribute of its package (Python sets it on import)."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest


@pytest.mark.parametrize("package", ["factory", "trainer", "judge"])
def test_no_module_shadows_an_api_name(package: str) -> None:
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    for name in root.__all__:
        value = getattr(root, name)
        assert not isinstance(value, types.ModuleType), f"{package}.{name} is the module {value.__name__}"
        assert value.__module__.startswith(package), f"{package}.{name} comes from {value.__module__}"
