"""Generate a JSON value that fits a JSON schema (the subset OpenAI's structured outputs use).

Supported: object (properties, required, additionalProperties as bool or schema), array (items,
minItems, maxItems), string (enum, const, minLength, maxLength, format date / date-time /
email / uri / uuid), integer and number (minimum, maximum, exclusive bounds, multipleOf),
boolean, null, type lists, enum, const, anyOf / oneOf (one branch is picked), allOf (merged),
and $ref into $defs / definitions (recursion is cut off by depth). Not honoured: `pattern`
(the string is ordinary text). An unusable schema raises `SchemaError` with what to change.

Free-text strings are marked pseudo-sentences chosen by the property name: instruction-like
names get an instruction, answer-like names a few sentences, names like title a short phrase.
"""

from __future__ import annotations

import random
import re
import uuid
from typing import Any

from . import text
from .instructions import DEFAULT_DUPLICATE_SHARE, instruction
from .text import MARKER, Language

MAX_DEPTH = 12
# Arrays without maxItems get at most this many items beyond minItems (a model writes a few).
DEFAULT_EXTRA_ITEMS = 4

# Property names (split into words: "user_question", "userQuestion") choose the kind of text.
_INPUT_NAMES = frozenset({"input", "context"})
_INSTRUCTION_NAMES = frozenset({"instruction", "question", "prompt", "task", "query", "request"})
_LONG_NAMES = frozenset({"output", "answer", "response", "rationale", "explanation", "reason",
                         "feedback", "critique", "analysis", "content", "body", "text",
                         "description", "summary", "solution"})
_SHORT_NAMES = frozenset({"title", "name", "topic", "keyword", "category", "label", "tag", "subject"})
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_WORD = re.compile(r"[a-z]+")


class SchemaError(ValueError):
    """The schema cannot be satisfied or uses something this generator does not understand."""


def generate(schema: Any, r: random.Random, lang: Language, duplicate_share: float = DEFAULT_DUPLICATE_SHARE) -> Any:
    """A value for `schema`; `duplicate_share` of its instructions are near-copies of a favourite
    task (factory.simulator.instructions)."""
    if not isinstance(schema, dict):
        raise SchemaError("the JSON schema must be an object")
    return _Generator(schema, r, lang, duplicate_share).value(schema, name="", depth=0)


class _Generator:
    def __init__(self, root: dict[str, Any], r: random.Random, lang: Language, duplicate_share: float) -> None:
        self.root = root
        self.r = r
        self.lang = lang
        self.duplicate_share = duplicate_share

    def value(self, schema: Any, name: str, depth: int) -> Any:
        if schema is True or schema == {}:
            return self.free_text(name)
        if not isinstance(schema, dict):
            raise SchemaError(f"schema for {name or 'the root'!r} must be an object, got {schema!r}")
        if depth > MAX_DEPTH:
            raise SchemaError(f"schema nests deeper than {MAX_DEPTH} levels at {name!r} (a $ref cycle without an exit?)")
        if "$ref" in schema:
            return self.value(self.resolve(schema["$ref"]), name, depth + 1)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            if not schema["enum"]:
                raise SchemaError(f"enum of {name or 'the root'!r} is empty")
            return self.r.choice(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if key in schema:
                branches = schema[key]
                if not isinstance(branches, list) or not branches:
                    raise SchemaError(f"{key} of {name or 'the root'!r} must be a non-empty list")
                # Prefer a non-null branch: a model fills a nullable field most of the time.
                non_null = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
                return self.value(self.r.choice(non_null or branches), name, depth + 1)
        if "allOf" in schema:
            return self.value(self.merge(schema["allOf"], name), name, depth + 1)

        kind = schema.get("type")
        if isinstance(kind, list):
            choices = [k for k in kind if k != "null"] or kind
            kind = self.r.choice(choices)
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        if kind == "object":
            return self.object(schema, name, depth)
        if kind == "array":
            return self.array(schema, name, depth)
        if kind == "string":
            return self.string(schema, name)
        if kind == "integer":
            return self.integer(schema, name)
        if kind == "number":
            return self.number(schema, name)
        if kind == "boolean":
            return self.r.random() < 0.5
        if kind == "null":
            return None
        raise SchemaError(f"unknown type {kind!r} at {name or 'the root'!r}; use object, array, string, integer, number, boolean or null")

    def resolve(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise SchemaError(f"only local $ref like '#/$defs/Name' are supported, got {ref!r}")
        node: Any = self.root
        for part in ref.lstrip("#").strip("/").split("/") if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                raise SchemaError(f"$ref {ref!r} points nowhere in the schema")
            node = node[part]
        return node

    def merge(self, parts: Any, name: str) -> dict[str, Any]:
        if not isinstance(parts, list) or not parts:
            raise SchemaError(f"allOf of {name or 'the root'!r} must be a non-empty list")
        merged: dict[str, Any] = {}
        for part in parts:
            part = self.resolve(part["$ref"]) if isinstance(part, dict) and "$ref" in part else part
            if not isinstance(part, dict):
                raise SchemaError(f"allOf of {name or 'the root'!r} holds a non-object: {part!r}")
            for key, val in part.items():
                if key == "properties":
                    merged.setdefault("properties", {}).update(val)
                elif key == "required":
                    merged["required"] = list(dict.fromkeys([*merged.get("required", []), *val]))
                else:
                    merged[key] = val
        return merged

    # --- containers ---------------------------------------------------------------------

    def object(self, schema: dict[str, Any], name: str, depth: int) -> dict[str, Any]:
        props = schema.get("properties") or {}
        if not isinstance(props, dict):
            raise SchemaError(f"properties of {name or 'the root'!r} must be an object")
        required = schema.get("required") or []
        missing = [k for k in required if k not in props]
        extra_schema = schema.get("additionalProperties", True)
        if missing and extra_schema is False:
            raise SchemaError(f"{name or 'the root'!r} requires {missing} but defines no such properties and forbids others")
        # Every defined property is filled (a model answering a schema usually does).
        out = {key: self.value(sub, key, depth + 1) for key, sub in props.items()}
        for key in missing:
            out[key] = self.value(extra_schema if isinstance(extra_schema, dict) else {}, key, depth + 1)
        if not props and isinstance(extra_schema, dict):
            for i in range(self.r.randint(1, 3)):
                out[f"key_{i + 1}"] = self.value(extra_schema, f"key_{i + 1}", depth + 1)
        return out

    def array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        lo = int(schema.get("minItems", 0))
        hi = schema.get("maxItems")
        if hi is not None and int(hi) < lo:
            raise SchemaError(f"{name or 'the root'!r}: maxItems {hi} < minItems {lo}")
        if lo == 0 and (hi is None or int(hi) > 0):
            lo_pick = 1  # an empty list is valid but useless; a model writes at least one
        else:
            lo_pick = lo
        top = lo_pick + DEFAULT_EXTRA_ITEMS if hi is None else min(int(hi), lo_pick + DEFAULT_EXTRA_ITEMS)
        # Deep in a recursive schema, stay at the minimum so the value stays finite.
        count = lo if depth > MAX_DEPTH // 2 else self.r.randint(lo_pick, max(lo_pick, top))
        items = schema.get("items", {})
        return [self.value(items, name, depth + 1) for _ in range(count)]

    # --- scalars ------------------------------------------------------------------------

    def string(self, schema: dict[str, Any], name: str) -> str:
        fmt = schema.get("format")
        if fmt is not None:
            return self.formatted(fmt, name)
        lo = int(schema.get("minLength", 0))
        hi = schema.get("maxLength")
        if hi is not None and int(hi) < lo:
            raise SchemaError(f"{name or 'the root'!r}: maxLength {hi} < minLength {lo}")
        s = self.free_text(name)
        while len(s) < lo:
            s += " " + text.sentence(self.r, self.lang)
        if hi is not None and len(s) > int(hi):
            s = s[: int(hi)].rstrip() if lo <= len(s[: int(hi)].rstrip()) else s[: int(hi)]
        return s

    def free_text(self, name: str) -> str:
        words = _name_words(name)
        r, lang = self.r, self.lang
        if words & _INPUT_NAMES:
            # Self-instruct tasks often have no input; give an empty one sometimes.
            return "" if r.random() < 0.4 else f"{MARKER} {text.sentence(r, lang)}"
        if words & _INSTRUCTION_NAMES:
            return f"{MARKER} {instruction(r, lang, self.duplicate_share)}"
        if words & _LONG_NAMES:
            return f"{MARKER} {text.sentences(r, lang, r.randint(2, 5))}"
        if words & _SHORT_NAMES:
            return f"{MARKER} {text.phrase(r, lang)}"
        return f"{MARKER} {text.sentence(r, lang)}"

    def formatted(self, fmt: str, name: str) -> str:
        r = self.r
        if fmt == "date":
            return f"20{r.randint(10, 29)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
        if fmt == "date-time":
            return f"20{r.randint(10, 29)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}Z"
        if fmt == "email":
            return f"user{r.randint(1, 99999)}@example.com"
        if fmt in ("uri", "url"):
            return f"https://example.com/simulated/{r.getrandbits(32):08x}"
        if fmt == "uuid":
            return str(uuid.UUID(int=r.getrandbits(128), version=4))
        return self.free_text(name)

    def integer(self, schema: dict[str, Any], name: str) -> int:
        lo, hi = _bounds(schema, name, integral=True)
        step = schema.get("multipleOf")
        if step:
            step = int(step)
            first, last = -(-lo // step), hi // step
            if first > last:
                raise SchemaError(f"{name or 'the root'!r}: no multiple of {step} in [{lo}, {hi}]")
            return self.r.randint(first, last) * step
        return self.r.randint(lo, hi)

    def number(self, schema: dict[str, Any], name: str) -> float:
        lo, hi = _bounds(schema, name, integral=False)
        x = round(self.r.uniform(lo, hi), 2)
        if not _within(x, schema):
            x = (lo + hi) / 2  # rounding stepped over an exclusive bound
        return x


def _name_words(name: str) -> set[str]:
    """{"user", "question"} for "user_question" or "userQuestions" (a plural counts as its singular)."""
    words = set(_WORD.findall(_CAMEL.sub(r"\1_\2", name).lower()))
    return words | {w[:-1] for w in words if w.endswith("s")}


def _bounds(schema: dict[str, Any], name: str, integral: bool) -> tuple[Any, Any]:
    """Inclusive [lo, hi] from minimum/maximum/exclusive*; an open side spans 100 from the other."""
    lo = schema.get("minimum")
    hi = schema.get("maximum")
    ex_lo = schema.get("exclusiveMinimum")
    ex_hi = schema.get("exclusiveMaximum")
    tiny = 1 if integral else 1e-6
    if isinstance(ex_lo, (int, float)) and not isinstance(ex_lo, bool):
        lo = ex_lo + tiny if lo is None else max(lo, ex_lo + tiny)
    if isinstance(ex_hi, (int, float)) and not isinstance(ex_hi, bool):
        hi = ex_hi - tiny if hi is None else min(hi, ex_hi - tiny)
    if lo is None and hi is None:
        lo, hi = 0, 100
    elif lo is None:
        lo = hi - 100
    elif hi is None:
        hi = lo + 100
    if integral:
        lo, hi = int(-(-lo // 1)), int(hi // 1)
    if lo > hi:
        raise SchemaError(f"{name or 'the root'!r}: the bounds leave no value (minimum {lo} > maximum {hi})")
    return lo, hi


def _within(x: float, schema: dict[str, Any]) -> bool:
    checks = (
        ("minimum", lambda b: x >= b),
        ("maximum", lambda b: x <= b),
        ("exclusiveMinimum", lambda b: x > b),
        ("exclusiveMaximum", lambda b: x < b),
    )
    return all(check(schema[key]) for key, check in checks if isinstance(schema.get(key), (int, float)))
