"""Reading a chat-completion body: the first choice's text, finish reason and `usage`.

One reader for the online engine and the Batch API's output lines, so both record the same fields
the same way. Read from the JSON body rather than the SDK's models: the engine needs four fields,
and building the SDK's model costs more than the rest of its work per request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from factory.engine.retry import MalformedResponse
from schemas import Usage


@dataclass
class Reply:
    content: str | None
    finish_reason: str | None
    usage: Usage | None
    error: str | None = None  # a refusal: answered and billed, but no content


def read_completion(body: Any) -> Reply:
    """The first choice and the usage of a chat completion body; MalformedResponse if it is not one."""
    if not isinstance(body, dict):
        raise MalformedResponse(f"the body is a JSON {type(body).__name__}, not an object")
    usage = read_usage(body.get("usage"))
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MalformedResponse("no choices in the answer", usage)
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise MalformedResponse("the first choice has no message", usage)
    content = message.get("content")
    error = None
    if content is None:
        if message.get("refusal"):
            error = f"refusal: {message['refusal']}"
        elif message.get("tool_calls"):
            content = json.dumps(message["tool_calls"], ensure_ascii=False)
    elif not isinstance(content, str):
        raise MalformedResponse(f"the message content is a {type(content).__name__}, not text", usage)
    return Reply(content, choices[0].get("finish_reason"), usage, error)


def read_usage(u: Any) -> Usage | None:
    """`usage` as our record (cached and reasoning tokens included); None when absent or unreadable."""
    if not isinstance(u, dict):
        return None
    prompt_details = u.get("prompt_tokens_details") or {}
    completion_details = u.get("completion_tokens_details") or {}
    try:
        return Usage(
            input_tokens=int(u.get("prompt_tokens") or 0),
            cached_input_tokens=int(prompt_details.get("cached_tokens") or 0),
            output_tokens=int(u.get("completion_tokens") or 0),
            reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
        )
    except (TypeError, ValueError, AttributeError):
        return None
