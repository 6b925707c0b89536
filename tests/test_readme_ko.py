"""README.ko.md is README.md in Korean, kept in step: each links to the other at its top, and the
two show the same commands (the lines of their ```bash blocks, the inline commands, the code of
their ```python blocks) under the same section headings, in the same order."""

from __future__ import annotations

import re
from pathlib import Path

from test_readme import fenced_commands, inline_commands

ROOT = Path(__file__).resolve().parents[1]
EN = (ROOT / "README.md").read_text(encoding="utf-8")
KO = (ROOT / "README.ko.md").read_text(encoding="utf-8")


def python_code(text: str) -> list[str]:
    """The lines of the ```python blocks, comments left out (they may be translated)."""
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)
    return [line.split("  #", 1)[0].rstrip() for block in blocks for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def headings(text: str) -> list[str]:
    prose = re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
    return re.findall(r"^#{1,3} .+$", prose, flags=re.MULTILINE)


def test_each_links_to_the_other_at_its_top() -> None:
    assert "[한국어 README](README.ko.md)" in "\n".join(EN.splitlines()[:4])
    assert "[English README](README.md)" in "\n".join(KO.splitlines()[:4])


def test_the_same_command_lines_in_the_same_order() -> None:
    assert fenced_commands(KO) == fenced_commands(EN)
    assert len(fenced_commands(EN)) >= 15


def test_the_same_inline_commands() -> None:
    assert sorted(inline_commands(KO)) == sorted(inline_commands(EN))


def test_the_same_python_code() -> None:
    assert python_code(EN), "README.md has a Python API example"
    assert python_code(KO) == python_code(EN)


def test_the_same_sections() -> None:
    assert headings(KO) == headings(EN)


def test_a_changed_command_is_caught() -> None:
    """The check itself: one option changed in one README is a difference."""
    changed = KO.replace("--max-cost 5 --batch", "--max-cost 6 --batch", 1)
    assert changed != KO and fenced_commands(changed) != fenced_commands(EN)
