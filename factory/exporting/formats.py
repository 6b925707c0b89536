"""The four export formats: one row per example, built from its chat messages (messages.py).

    messages           {"messages": [{"role", "content"}, ...]}
                       TRL's SFTTrainer (conversational), Unsloth, axolotl (`type: chat_template`),
                       LLaMA-Factory (`formatting: sharegpt` with OpenAI-style tags)
    alpaca             {"instruction", "input", "output", "system", "history": [[user, assistant], ...]}
                       LLaMA-Factory's alpaca format (history: the earlier turns), axolotl (`type: alpaca`)
    sharegpt           {"conversations": [{"from": "system" | "human" | "gpt", "value"}, ...]}
                       LLaMA-Factory (`formatting: sharegpt`), Unsloth (`standardize_sharegpt`), axolotl
    prompt-completion  {"prompt": [system?, user, (assistant, user)...], "completion": [assistant]}
                       TRL's conversational prompt-completion type: the loss falls on the completion only

Each format's columns come with their Arrow types, so a Parquet file has the same columns and
nesting as the JSONL one (and `datasets` loads both to the same features).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from factory.exporting.messages import example_messages, turn_pairs
from schemas import Example

Row = dict[str, Any]


def _messages(example: Example) -> Row:
    return {"messages": example_messages(example)}


def _alpaca(example: Example) -> Row:
    messages = example_messages(example)
    system, pairs = turn_pairs(messages)
    if len(pairs) == 1 and messages[-2]["content"] == example.prompt():
        # Single-turn: Alpaca's own split of the user turn into instruction and input.
        return {"instruction": example.instruction, "input": example.input, "output": example.output,
                "system": system, "history": []}
    *history, (last_user, last_answer) = pairs
    return {"instruction": last_user, "input": "", "output": last_answer, "system": system,
            "history": [[user, answer] for user, answer in history]}


_SHAREGPT_ROLE = {"system": "system", "user": "human", "assistant": "gpt"}


def _sharegpt(example: Example) -> Row:
    return {"conversations": [{"from": _SHAREGPT_ROLE[m["role"]], "value": m["content"]}
                              for m in example_messages(example)]}


def _prompt_completion(example: Example) -> Row:
    messages = example_messages(example)
    return {"prompt": messages[:-1], "completion": messages[-1:]}


@dataclass(frozen=True)
class Format:
    name: str
    row: Callable[[Example], Row]
    columns: tuple[str, ...]
    readers: str  # which trainers read it, for the dataset card

    def arrow_schema(self) -> Any:
        """The pyarrow schema of the format's rows (pyarrow is imported here, only for Parquet)."""
        import pyarrow as pa

        message = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
        types = {
            "messages": message, "prompt": message, "completion": message,
            "instruction": pa.string(), "input": pa.string(), "output": pa.string(), "system": pa.string(),
            "history": pa.list_(pa.list_(pa.string())),
            "conversations": pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())])),
        }
        return pa.schema([(c, types[c]) for c in self.columns])


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("messages", _messages, ("messages",),
           "TRL's SFTTrainer (conversational), Unsloth, axolotl (`type: chat_template`), LLaMA-Factory "
           "(`formatting: sharegpt` with `role`/`content` tags)"),
    Format("alpaca", _alpaca, ("instruction", "input", "output", "system", "history"),
           "LLaMA-Factory (alpaca format, `history` for earlier turns), axolotl (`type: alpaca`), Unsloth"),
    Format("sharegpt", _sharegpt, ("conversations",),
           "LLaMA-Factory (`formatting: sharegpt`), Unsloth (`standardize_sharegpt`), axolotl "
           "(`type: chat_template` with `from`/`value` mapped)"),
    Format("prompt-completion", _prompt_completion, ("prompt", "completion"),
           "TRL's SFTTrainer (conversational prompt-completion: the loss on the completion only)"),
)}


__all__ = ["FORMATS", "Format", "Row"]
