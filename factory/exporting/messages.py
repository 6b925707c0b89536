"""An example as chat messages: the one reading of an example's turns, for the exports and the viewer.

    example_messages(example)  ->  [{"role": "system", ...}?, {"role": "user", ...}, {"role": "assistant", ...}, ...]

A single-turn example (today's fields) is its system text (when set), the user turn
(`Example.prompt()`: the instruction, then the input after a blank line) and the answer (`output`).
A multi-turn example carries its turns in `messages` (OpenAI's chat shape: a list of
{"role": "user" | "assistant", "content": str}, user first, alternating, an assistant turn last);
they are taken as they are, after the system text. The records of schemas are kept open to newer
fields (`extra="allow"`), so `messages` reads the same whether it is a declared field of Example
(list items as models) or a field this version does not know yet (list items as dicts).
"""

from __future__ import annotations

from typing import Any

from factory.errors import ExportError
from schemas import Example

ROLES = ("system", "user", "assistant")


def _turn(item: Any) -> tuple[str, str]:
    """(role, content) of one message, a dict or a model with those attributes."""
    if isinstance(item, dict):
        return str(item.get("role", "")), str(item.get("content", ""))
    return str(getattr(item, "role", "")), str(getattr(item, "content", ""))


def own_turns(example: Example) -> list[tuple[str, str]] | None:
    """The example's own `messages` as (role, content) pairs; None for a single-turn example."""
    raw = getattr(example, "messages", None)
    if not raw:
        return None
    if not isinstance(raw, list):
        raise ExportError(f"example {example.id}: 'messages' must be a list of {{role, content}} messages")
    return [_turn(m) for m in raw]


def example_messages(example: Example) -> list[dict[str, str]]:
    """system (when set), then user and assistant turns, in order; the last is an assistant turn."""
    turns = own_turns(example)
    if turns is None:
        turns = [("user", example.prompt()), ("assistant", example.output)]
    system = example.system
    if turns and turns[0][0] == "system":  # a system message inside the turns wins over the field
        system, turns = turns[0][1], turns[1:]
    bad = [role for role, _ in turns if role not in ("user", "assistant")]
    if bad or not turns or turns[0][0] != "user" or turns[-1][0] != "assistant" or any(
            a == b for (a, _), (b, _) in zip(turns, turns[1:])):
        roles = ", ".join(role or "?" for role, _ in turns)
        raise ExportError(f"example {example.id}: its messages must alternate user and assistant turns, user first "
                          f"and an assistant turn last (got {roles or 'none'})")
    head = [{"role": "system", "content": system}] if system else []
    return head + [{"role": role, "content": content} for role, content in turns]


def turn_pairs(messages: list[dict[str, str]]) -> tuple[str, list[tuple[str, str]]]:
    """(system, [(user, assistant), ...]) of messages as `example_messages` gives them."""
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    turns = messages[1:] if system else messages
    return system, [(turns[i]["content"], turns[i + 1]["content"]) for i in range(0, len(turns), 2)]


__all__ = ["ROLES", "example_messages", "own_turns", "turn_pairs"]
