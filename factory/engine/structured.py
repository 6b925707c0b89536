"""Structured output: whether to ask a server for a reply that follows a JSON schema, and how."""

from __future__ import annotations

from typing import Any

# OpenAI models without json_schema response_format (structured outputs came with gpt-4o-2024-08-06
# and gpt-4o-mini; the older ones take json_object at most).
_NO_JSON_SCHEMA_PREFIXES = ("gpt-3.5", "gpt-4-", "gpt-4o-2024-05-13", "o1-mini", "o1-preview", "chatgpt-4o")
_NO_JSON_SCHEMA_EXACT = ("gpt-4", "gpt-4o-2024-05-13")


def wants_structured(setting: str, model: str) -> bool:
    """`--structured auto`: json_schema unless the model is one of OpenAI's that refuse it. Other
    servers (vLLM, the simulator, ...) are assumed to take it; if one refuses, the run stops with a
    message that says to use `--structured no`."""
    if setting != "auto":
        return setting == "yes"
    name = model.lower()
    return not (name in _NO_JSON_SCHEMA_EXACT or name.startswith(_NO_JSON_SCHEMA_PREFIXES))


def json_schema_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}
