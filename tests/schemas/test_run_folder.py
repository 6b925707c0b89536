"""The run folder's owner: its config.toml writer, summary.json merger, and that no other module spells
a run-folder file name (docs/ARCHITECTURE.md, "The run folder")."""

from __future__ import annotations

import ast
import json
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from schemas import RunFolder, RunFolderError
from schemas.run import FILE_NAMES, FOLDER_NAMES

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "factory", "trainer", "judge")
OWNER = ROOT / "schemas" / "run.py"


class Engine(BaseModel):
    model: str
    max_cost: float | None = None


def test_sections_are_written_side_by_side_without_none(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    run.write_config_section("generate", Engine(model="gpt-4o", max_cost=5.0))
    run.write_config_section("judge", Engine(model="gpt-4o-mini"))
    run.write_config_section("generate", Engine(model="gpt-4.1"))
    run.write_config_section(("answer", "lora"), {"questions": ["a.jsonl"], "engine": Engine(model="m")})
    run.write_config_section(("answer", "base"), {"questions": ["b.jsonl"], "seed": None})
    doc = tomllib.loads(run.config.read_text())
    assert doc["generate"] == {"model": "gpt-4.1"} and doc["judge"] == {"model": "gpt-4o-mini"}
    assert doc["answer"] == {"lora": {"questions": ["a.jsonl"], "engine": {"model": "m"}},
                             "base": {"questions": ["b.jsonl"]}}
    assert run.config_section("answer", "lora")["questions"] == ["a.jsonl"]
    assert run.config_section("nothing", "here") == {}
    assert [p.name for p in run.root.iterdir()] == ["config.toml"]  # no temporary file left behind


@pytest.mark.parametrize("value", [
    {"api_key": "sk-x"},
    {"engine": {"client_secret": "x"}},
    {"engine": Engine(model="m"), "naver": {"password": "p"}},
])
def test_a_secret_shaped_setting_is_refused_at_any_depth(tmp_path: Path, value: dict) -> None:
    run = RunFolder(tmp_path)
    with pytest.raises(RunFolderError, match="secret"):
        run.write_config_section("stage", value)
    assert not run.config.exists()


def test_a_secret_value_is_refused(tmp_path: Path) -> None:
    class Leaky(BaseModel):
        token: SecretStr

    with pytest.raises(RunFolderError, match="secret"):
        RunFolder(tmp_path).write_config_section("leaky", Leaky(token=SecretStr("x")))


def test_a_broken_config_is_named_and_left_as_it_is(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    run.config.write_text("[train\nmodel = 1\n")
    with pytest.raises(RunFolderError, match=r"config.toml is not valid TOML .*fix or remove it"):
        run.write_config_section("judge", {"mode": "single"})
    assert run.config.read_text() == "[train\nmodel = 1\n"
    run.config.write_text("answer = 3\n")
    with pytest.raises(RunFolderError, match=r"\[answer\] is not a table"):
        run.write_config_section(("answer", "lora"), {"seed": 1})


def test_the_summary_keeps_what_other_reports_wrote(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    run.merge_summary("cost", {"usd": 1.5})
    run.merge_summary("scores", {"mean": float("nan")})
    assert json.loads(run.summary.read_text()) == {"cost": {"usd": 1.5}, "scores": {"mean": None}}
    run.summary.write_text("[1, 2]")
    with pytest.raises(RunFolderError, match="not an object"):
        run.merge_summary("cost", {})


def test_a_curation_name_is_one_plain_folder(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    assert run.curation_dir("gpt-4o-v1") == tmp_path / "curation" / "gpt-4o-v1"
    for bad in ("", "../x", "a/b", ".hidden"):
        with pytest.raises(RunFolderError, match="plain folder name"):
            run.curation_dir(bad)


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def spelled_elsewhere(root: Path) -> list[str]:
    """Every place outside the owner that spells a run-folder name: a string that is one of its file
    names (or ends in /NAME), or `path / "train"`-style joins with one of its folder names."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if path == OWNER:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            skip = _docstrings(tree)
            for node in sorted(ast.walk(tree), key=lambda n: getattr(n, "lineno", 0)):
                where = f"{path.relative_to(root)}:{getattr(node, 'lineno', '?')}"
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                    # a path-like string (prose, such as help text naming runs/NAME/examples.jsonl, has spaces)
                    if not node.value.split() == [node.value]:
                        continue
                    if node.value.rsplit("/", 1)[-1] in FILE_NAMES:
                        found.append(f"{where}: {node.value!r}")
                elif (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
                      and isinstance(node.right, ast.Constant) and node.right.value in FOLDER_NAMES):
                    found.append(f"{where}: / {node.right.value!r}")
    return found


def test_no_module_but_the_owner_spells_a_run_folder_name() -> None:
    found = spelled_elsewhere(ROOT)
    assert not found, "ask schemas.RunFolder for these paths (or register a new name there):\n" + "\n".join(found)


def test_the_check_finds_a_spelled_name(tmp_path: Path) -> None:
    (tmp_path / "factory").mkdir()
    (tmp_path / "factory" / "x.py").write_text('"""examples.jsonl in a docstring is fine."""\n'
                                               'A = "examples.jsonl"\nB = run / "train" / "x"\nC = "eval/answers.jsonl"\n')
    assert [line.split(": ", 1)[1] for line in spelled_elsewhere(tmp_path)] == [
        "'examples.jsonl'", "/ 'train'", "'eval/answers.jsonl'"]
