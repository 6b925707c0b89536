"""The import direction of DESIGN.md: schemas <- factory <- judge; schemas <- trainer; nothing imports judge."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"schemas", "factory", "trainer", "judge"}
ALLOWED = {
    "schemas": set(),
    "factory": {"schemas"},
    "trainer": {"schemas"},
    "judge": {"schemas", "factory"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & PACKAGES


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_imports_follow_the_design(package: str) -> None:
    files = list((ROOT / package).rglob("*.py"))
    assert files, f"{package} has no modules"
    for f in files:
        bad = imported_packages(f) - ALLOWED[package] - {package}
        assert not bad, f"{f.relative_to(ROOT)} imports {sorted(bad)}; {package} may import only {sorted(ALLOWED[package])}"
