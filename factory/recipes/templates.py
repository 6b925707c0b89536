"""Prompt templates: editable text files, one per recipe stage and language.

A template lives in `factory/prompts/<lang>/<name>.txt` (or in the folder given by `--prompts`,
with the same layout, so a user edits a copy rather than the package). It is a sequence of
sections, each opened by a line `--- NAME ---`:

    --- system ---        the system message
    --- user ---          the user message
    --- format:json ---   how to answer when the request carries a json_schema (structured output)
    --- format:text ---   how to answer in plain text (endpoints without structured output)
    --- ... ---           any other piece the recipe fills in (how one example is shown, ...)

`{{name}}` is a placeholder. Substitution is one pass, so a `{{...}}` written inside a seed task
or a generated question stays literal text. A template that lacks a section or a placeholder the
recipe needs is an error naming the file, found before any request is sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from factory.errors import TemplateError

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
LANGS = ("ko", "en")

_SECTION = re.compile(r"^--- ([a-z_]+(?::[a-z_]+)?) ---[ \t]*$", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@dataclass(frozen=True)
class Template:
    name: str
    lang: str
    path: Path
    sections: dict[str, str]

    def section(self, name: str) -> str:
        try:
            return self.sections[name]
        except KeyError:
            raise TemplateError(f"{self.path}: no '--- {name} ---' section") from None

    def has(self, name: str) -> bool:
        return name in self.sections

    def fill(self, section: str, values: Mapping[str, object]) -> str:
        """The section with its placeholders replaced (one pass). A placeholder without a value is
        an error; a value the section does not use is fine (sections may drop optional pieces)."""
        text = self.section(section)

        def sub(m: re.Match[str]) -> str:
            key = m.group(1)
            if key not in values:
                raise TemplateError(
                    f"{self.path}: section '{section}' uses {{{{{key}}}}}, which this recipe does not provide "
                    f"(it provides: {', '.join(sorted(values)) or 'nothing'})"
                )
            return str(values[key])

        return _PLACEHOLDER.sub(sub, text)

    def placeholders(self, section: str) -> set[str]:
        return set(_PLACEHOLDER.findall(self.section(section)))

    def require(self, sections: Iterable[str], placeholders: Mapping[str, Iterable[str]] = {}) -> Template:
        """Check that the sections exist and that each named section uses the given placeholders."""
        for name in sections:
            self.section(name)
        for name, needed in placeholders.items():
            missing = set(needed) - self.placeholders(name)
            if missing:
                shown = ", ".join("{{" + m + "}}" for m in sorted(missing))
                raise TemplateError(f"{self.path}: section '{name}' must contain {shown}")
        return self


def template_path(name: str, lang: str, prompts_dir: Path | None = None) -> Path:
    return (prompts_dir or PROMPTS_DIR) / lang / f"{name}.txt"


def load_template(name: str, lang: str, prompts_dir: Path | None = None) -> Template:
    if lang not in LANGS:
        raise TemplateError(f"no prompts for language {lang!r}; use one of {', '.join(LANGS)}")
    path = template_path(name, lang, prompts_dir)
    if not path.is_file():
        where = f"--prompts {prompts_dir}" if prompts_dir else "the package"
        raise TemplateError(
            f"no prompt template {path} (from {where}): copy factory/prompts/{lang}/{name}.txt there and edit it"
        )
    return parse_template(path.read_text(encoding="utf-8"), name=name, lang=lang, path=path)


def parse_template(text: str, *, name: str, lang: str, path: Path) -> Template:
    parts = _SECTION.split(text)
    # split gives [preamble, name1, body1, name2, body2, ...]
    if parts[0].strip():
        raise TemplateError(f"{path}: text before the first '--- NAME ---' line (start with '--- system ---')")
    sections: dict[str, str] = {}
    for i in range(1, len(parts), 2):
        key, body = parts[i], parts[i + 1].strip("\n")
        if key in sections:
            raise TemplateError(f"{path}: section '--- {key} ---' appears twice")
        sections[key] = body.strip()
    return Template(name=name, lang=lang, path=path, sections=sections)
