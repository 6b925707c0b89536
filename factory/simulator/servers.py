"""Which server the simulator plays, as far as structured output goes: the `response_format` forms
each takes, and how each refuses the others (their real error bodies), so that the engine's probe
(factory/engine/structured.py) is tested against what those servers answer.

- openai     json_schema and json_object (the latter needs the word "json" in the messages)
- vllm       json_schema and json_object; another type is refused with vLLM's error body (HTTP 400,
             `{"object": "error", "message": ..., "type": "BadRequestError", "code": 400}`)
- llamacpp   llama-cpp-python's server: json_schema is refused with HTTP 500 and its FastAPI
             validation text ("Input should be 'text' or 'json_object'"); json_object takes a
             `schema` and the reply follows it (a grammar); no rate-limit headers
- textonly   no structured output: any response_format but text is refused (HTTP 400,
             unsupported_parameter)
"""

from __future__ import annotations

import json
from typing import Any

from .errors import error_response
from .httpserver import Response, json_response

SERVERS = ("openai", "vllm", "llamacpp", "textonly")
_VLLM_TYPES = ("text", "json_object", "json_schema", "structural_tag")


def refusal(server: str, value: Any) -> Response | None:
    """The server's answer to a `response_format` it does not take (None: it takes it)."""
    kind = value.get("type") if isinstance(value, dict) else None
    if value is None or server == "openai" or kind == "text":
        return None
    if server == "llamacpp" and kind != "json_object":
        detail = {"type": "literal_error", "loc": ("body", "response_format", "type"),
                  "msg": "Input should be 'text' or 'json_object'", "input": kind,
                  "ctx": {"expected": "'text' or 'json_object'"}}
        message = (f"1 validation error:\n  {detail!r}\n\n  File \"llama_cpp/server/app.py\", line 376, in "
                   "create_chat_completion\n    POST /v1/chat/completions")
        return error_response(500, message, "internal_server_error")
    if server == "vllm" and kind not in _VLLM_TYPES:
        message = json.dumps([{"type": "literal_error", "loc": ["body", "response_format", "type"],
                               "msg": "Input should be 'text', 'json_object', 'json_schema' or 'structural_tag'",
                               "input": kind}])
        return json_response(400, {"object": "error", "message": message, "type": "BadRequestError", "param": None,
                                   "code": 400})
    if server == "textonly":
        return error_response(400, "response_format is not supported by this server", "invalid_request_error",
                              "response_format", "unsupported_parameter")
    return None


def as_openai(server: str, payload: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The request as the simulator's OpenAI-shaped parser reads it, and whether OpenAI's rule that
    json_object needs the word "json" in the messages applies (it is OpenAI's alone)."""
    value = payload.get("response_format")
    if server == "llamacpp" and isinstance(value, dict) and value.get("type") == "json_object" \
            and isinstance(value.get("schema"), dict):
        # A grammar from the schema: the reply follows it, as a json_schema reply does.
        payload = {**payload, "response_format": {"type": "json_schema",
                                                  "json_schema": {"name": "schema", "schema": value["schema"]}}}
    return payload, server == "openai"


__all__ = ["SERVERS", "as_openai", "refusal"]
