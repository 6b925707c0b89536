"""The import rules and the house rules (docs/ARCHITECTURE.md), read from the source tree (nothing
is imported to check them).

- Between packages: schemas <- factory <- judge, schemas <- trainer; nothing imports judge.
- One door between packages: a package imports another's names only from that package or one of its
  subpackages (a folder with `__init__.py`), and only names that `__init__`'s `__all__` lists (its
  public face): never a private module such as factory.engine.ledger or schemas.run.
- Inside: the commands import the parts, the parts never import the commands. A command is a
  module that registers a sub-command (`def add_parser(subparsers)`, the protocol of each
  `__main__.py`) or a `__main__.py` itself; every other module is part of a part. A command may
  use another command of its own package (`batch` reads `send`'s request files), never one of
  another package.

The parts are whatever the tree holds (subpackages such as factory/engine/ or factory/batch/ and
the modules beside the commands), so a new subpackage is checked without editing this file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "schemas": set(),
    "factory": {"schemas"},
    "trainer": {"schemas"},
    "judge": {"schemas", "factory"},
}


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(root: Path, path: Path) -> list[tuple[int, set[str]]]:
    """Each import statement of `path`: its line and the modules it may name, by full name
    (`from a import b` names a, and a.b when b is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(root, path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, {a.name}) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, {module} | {f"{module}.{a.name}" for a in node.names}))
    return found


def is_command(path: Path) -> bool:
    if path.name == "__main__.py":
        return True
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(isinstance(n, ast.FunctionDef) and n.name == "add_parser" for n in tree.body)


def sources(root: Path) -> dict[str, Path]:
    """Module name -> file, for every module of the four packages under `root`."""
    return {module_name(root, f): f for package in ALLOWED for f in sorted((root / package).rglob("*.py"))}


def violations(root: Path) -> list[str]:
    """One line per import statement that breaks a rule: file:line, what it imports, the rule."""
    modules = sources(root)
    commands = {name for name, path in modules.items() if is_command(path)}
    found = []
    for name, path in modules.items():
        package = name.split(".")[0]
        for line, targets in imports(root, path):
            where = f"{path.relative_to(root)}:{line}"
            tops = {t.split(".")[0] for t in targets} & ALLOWED.keys()
            bad = sorted(tops - ALLOWED[package] - {package})
            named = sorted(targets & commands - {name})
            if bad:
                allowed = sorted(ALLOWED[package]) or "nothing of ours"
                found.append(f"{where} imports {', '.join(bad)}: {package} may import only {allowed}")
            elif named and name not in commands:
                found.append(f"{where} imports the command {named[0]}: a part never imports a command "
                             "(move what both need into a part)")
            elif named and named[0].split(".")[0] != package:
                found.append(f"{where} imports the command {named[0]} of another package: import its parts")
    return found


def public_names(path: Path) -> set[str] | None:
    """The literal `__all__` of a module (None without one)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return None


def face_violations(root: Path) -> list[str]:
    """One line per import of another package's name that is not on that package's public face."""
    modules = sources(root)
    found = []
    for name, path in modules.items():
        package = name.split(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                targets = [(node.module, [a.name for a in node.names])]
            elif isinstance(node, ast.Import):
                targets = [(a.name, []) for a in node.names]
            else:
                continue
            for module, names in targets:
                if module.split(".")[0] == package or module.split(".")[0] not in ALLOWED:
                    continue
                where = f"{path.relative_to(root)}:{node.lineno}"
                target = modules.get(module)
                if target is None or target.name != "__init__.py":
                    found.append(f"{where} imports the private module {module}: import from its package's public face")
                    continue
                face = public_names(target) or set()
                hidden = sorted(set(names) - face)
                if hidden:
                    found.append(f"{where} imports {', '.join(hidden)} from {module}, which does not list "
                                 f"{'them' if len(hidden) > 1 else 'it'} in __all__")
    return found


def test_the_tree_follows_the_rules() -> None:
    assert sources(ROOT), "no modules found"
    assert violations(ROOT) == []
    assert face_violations(ROOT) == []


def test_the_house_rules() -> None:
    """docs/ARCHITECTURE.md: small modules, and a judge/ whose top level reads as a map."""
    long = [f"{path.relative_to(ROOT)}: {n} lines" for path in sources(ROOT).values()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 550]
    assert not long, "split these modules (at most 550 lines each):\n" + "\n".join(long)
    top = sorted(p.name for p in (ROOT / "judge").iterdir()
                 if p.suffix == ".py" or (p / "__init__.py").is_file())
    assert len(top) <= 10, top


def test_the_commands_are_those_the_command_lines_register() -> None:
    """The commands found by their `add_parser` are exactly what `python -m factory` registers."""
    main = ast.parse((ROOT / "factory/__main__.py").read_text(encoding="utf-8"))
    registered = next(
        {ast.literal_eval(e) for e in node.value.elts}
        for node in main.body
        if isinstance(node, ast.AnnAssign | ast.Assign) and "COMMANDS" in ast.unparse(node)
    )
    found = {name for name, path in sources(ROOT).items() if name.startswith("factory.") and is_command(path)}
    assert found - {"factory.__main__", "factory.simulator.__main__"} == registered


def test_trainer_and_judge_register_every_command_they_hold() -> None:
    """The commands of trainer and judge (each in its commands/ folder) are exactly the modules their
    `__main__.py` imports to build the command line."""
    modules = sources(ROOT)
    for package in ("trainer", "judge"):
        main = ROOT / package / "__main__.py"
        imported = {t for _, targets in imports(ROOT, main) for t in targets} & set(modules)
        found = {name for name, path in modules.items()
                 if name.startswith(f"{package}.") and path.name != "__main__.py" and is_command(path)}
        assert found == {name for name in imported if is_command(modules[name])}
        assert all(".commands." in name for name in found), found


# --------------------------------------------------------------------------------------------
# The check itself: each rule, broken in a small synthetic tree, is reported


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for package in ALLOWED:
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").touch()
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


COMMAND = "def add_parser(subparsers):\n    pass\n"
CLEAN = {
    "factory/__main__.py": "import importlib\nfrom factory.commands import generate\n",
    "factory/commands/generate.py": "from factory.engine import Engine\nfrom factory.engine.ledger import Ledger\n" + COMMAND,
    "factory/commands/send.py": "from factory.engine import Engine\n" + COMMAND,
    "factory/engine/__init__.py": "from factory.engine.core import Engine\n__all__ = ['Engine']\n",
    "factory/engine/core.py": "from schemas import Example\n",
    "schemas/__init__.py": "__all__ = ['Example']\n",
    "factory/engine/ledger.py": "from .core import Engine\n",
    "factory/batch/__init__.py": "",
    "factory/commands/batch.py": "from factory.commands.send import read_requests\nfrom factory.batch import run\n" + COMMAND,
    "judge/commands/grade.py": "from factory.engine import Engine\n" + COMMAND,
    "trainer/loop.py": "from schemas import Example\n",
}


def test_a_clean_synthetic_tree_passes(tmp_path: Path) -> None:
    assert violations(write_tree(tmp_path, CLEAN)) == []
    assert face_violations(write_tree(tmp_path, CLEAN)) == []


@pytest.mark.parametrize("text, message", [
    ("from factory.engine.ledger import Ledger\n", "imports the private module factory.engine.ledger"),
    ("import factory.engine.ledger\n", "imports the private module factory.engine.ledger"),
    ("from factory.engine import Engine, _retry\n", "imports _retry from factory.engine, which does not list it"),
    ("from schemas.run import RunFolder\n", "imports the private module schemas.run"),
])
def test_a_name_off_the_public_face_is_reported(tmp_path: Path, text: str, message: str) -> None:
    tree = {**CLEAN, "judge/grading/run.py": text}
    found = face_violations(write_tree(tmp_path, tree))
    assert len(found) == 1 and found[0].startswith("judge/grading/run.py") and message in found[0], found


@pytest.mark.parametrize("path, text, message", [
    ("factory/engine/core.py", "from factory.commands.generate import helper\n", "imports the command factory.commands.generate"),
    ("factory/engine/core.py", "from factory.commands import send\n", "imports the command factory.commands.send"),
    ("factory/engine/core.py", "import factory.commands.batch as cli\n", "imports the command factory.commands.batch"),
    ("factory/engine/ledger.py", "from ..commands import generate\n", "imports the command factory.commands.generate"),
    ("factory/engine/ledger.py", "from ..commands.batch import main\n", "imports the command factory.commands.batch"),
    ("factory/engine/ledger.py", "def f():\n    from factory.__main__ import main\n", "imports the command factory.__main__"),
    ("judge/commands/grade.py", "from factory.commands.send import read_requests\n" + COMMAND, "of another package"),
    ("judge/reports/stats.py", "from factory.commands.send import read_requests\n", "a part never imports a command"),
    ("factory/engine/core.py", "from judge.grading.run import grade_run\n", "factory may import only ['schemas']"),
    ("trainer/loop.py", "import factory.engine\n", "trainer may import only ['schemas']"),
    ("schemas/records.py", "from trainer.loop import train\n", "schemas may import only nothing of ours"),
])
def test_a_broken_rule_is_reported(tmp_path: Path, path: str, text: str, message: str) -> None:
    found = violations(write_tree(tmp_path, {**CLEAN, path: text}))
    assert len(found) == 1 and found[0].startswith(path) and message in found[0], found
