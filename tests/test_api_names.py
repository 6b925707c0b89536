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
        # its own, or one of the errors the packages share (schemas/errors.py)
        assert value.__module__.startswith((package, "schemas.errors")), f"{package}.{name} comes from {value.__module__}"


def test_the_readmes_python_example_calls_the_api_as_it_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every keyword of every API call in README.md's ```python block is a parameter of the function or
    a field of the settings it routes keywords to; the dry-run call itself runs (nothing is sent)."""
    import ast
    import inspect
    import re
    from pathlib import Path

    from factory.engine.settings import EngineSettings
    from factory.recipes.settings import GenerateSettings
    from judge.grading.settings import JudgeSettings
    from trainer.answering import ANSWER_FIELDS
    from trainer.settings import TrainSettings

    root = Path(__file__).resolve().parents[1]
    (code,) = re.findall(r"^```python\n(.*?)^```", (root / "README.md").read_text(encoding="utf-8"),
                         flags=re.DOTALL | re.MULTILINE)
    routed = {
        "factory.generate": set(GenerateSettings.model_fields) | set(EngineSettings.model_fields),
        "trainer.train": set(TrainSettings.model_fields),
        "trainer.answer": set(ANSWER_FIELDS),
        "judge.grade": set(JudgeSettings.model_fields) | set(EngineSettings.model_fields),
    }
    calls = [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and isinstance(n.func.value, ast.Name) and n.func.value.id in ("factory", "trainer", "judge")]
    assert len(calls) >= 7
    for call in calls:
        name = f"{call.func.value.id}.{call.func.attr}"
        function = getattr(importlib.import_module(call.func.value.id), call.func.attr)
        taken = set(inspect.signature(function).parameters) | routed.get(name, set())
        unknown = {k.arg for k in call.keywords} - taken
        assert not unknown, f"{name} does not take {unknown}"

    from factory.simulator import SimConfig, run_simulator

    first = code.split("\nprint(plan)")[0].split("\n", 1)[1]  # the dry-run call, as the README writes it
    existed = (root / "runs" / "ko").exists()
    with run_simulator(SimConfig(seed=1)) as url:
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        monkeypatch.chdir(root)
        scope: dict = {"factory": importlib.import_module("factory")}
        exec(first, scope)  # noqa: S102
    assert scope["plan"].requests > 0 and scope["plan"].n == 1000
    assert (root / "runs" / "ko").exists() == existed, "a dry run writes nothing"
