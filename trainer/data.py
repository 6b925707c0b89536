"""examples.jsonl -> chat messages -> token ids with loss labels, and the held-out eval split.

Formatting comes from the tokenizer's own chat template, so any chat model formats the way it was tuned.

Choices (and why):
- System text: when the template has no system role (Gemma raises on one) or silently drops it, the
  system text is folded into the first user turn as "SYSTEM\\n\\nPROMPT".
- What is trained: the answer and the template's end-of-turn marker (Gemma: `<end_of_turn>`), so the model
  learns to stop. Whatever the template writes after the marker (Gemma: a newline) is left out of the
  sequence: inference stops at the marker and never generates it. When the template closes a turn with no
  special token at all, the tokenizer's eos token is appended instead.
- Prompt and answer are tokenized separately (prompt = everything the template writes before the answer,
  ending with Gemma's "<start_of_turn>model\\n"): that is exactly how inference sees them, the prompt
  tokenized alone and the answer generated after it.
- Truncation to `max_len` tokens: an example whose prompt leaves no room for a single answer token is
  DROPPED (counted as `dropped_prompt_too_long`); a long answer is cut from the right and then has NO
  end-of-turn marker (counted as `truncated`): appending the marker after a cut would teach the model to
  stop mid-sentence. An answer that is empty after the template trims it is dropped (`dropped_empty_answer`).
- A conversation (an example's `messages`): every assistant turn is trained, with its end-of-turn marker;
  every user turn and what the template writes around the turns is masked. Each prompt is what the
  template writes before that answer given the turns so far, which is what inference sees when it answers
  that turn. Past `max_len` the conversation is cut from the right, as a long answer is.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from trainer.errors import TrainError

if TYPE_CHECKING:  # schemas needs pydantic; encoding and packing do not, so GPU boxes without it still run
    from schemas import Example
    from trainer.settings import TrainSettings

IGNORE_INDEX = -100
# Stands in for the answer when probing the template; no template will write it by itself.
_SENTINEL = "\u2063ANSWER\u2063"


@dataclass
class TokenizedExample:
    """Token ids and aligned labels (labels[i] = input_ids[i] where trained, -100 on the prompt)."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool = False
    example_id: str = ""

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_supervised(self) -> int:
        # Loss positions after the shift: a label on token 0 is never predicted.
        return sum(1 for y in self.labels[1:] if y != IGNORE_INDEX)


@dataclass
class EncodeStats:
    """What encoding did to the examples; goes into the run's metrics and log."""

    total: int = 0
    kept: int = 0
    truncated: int = 0
    dropped_prompt_too_long: int = 0
    dropped_empty_answer: int = 0
    tokens: int = 0
    supervised_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class ChatEncoder:
    """Encodes examples with one tokenizer's chat template. Probes the template once, at construction."""

    def __init__(self, tokenizer: Any, max_len: int) -> None:
        if max_len < 2:
            raise ValueError(f"max_len must be at least 2 tokens, got {max_len}")
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "the tokenizer has no chat template: use an instruction-tuned model (e.g. google/gemma-2b-it) "
                "or a tokenizer folder whose tokenizer_config.json/chat_template.jinja defines one"
            )
        self.tokenizer = tokenizer
        self.max_len = max_len
        self.supports_system = self._probe_system_role()
        self.end_ids = self._end_of_turn_ids()

    # -- probing the template -------------------------------------------------------------------
    def _render(self, messages: list[dict[str, str]], generation_prompt: bool = False) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )

    def _probe_system_role(self) -> bool:
        probe = "\u2063SYSTEM\u2063"
        try:
            text = self._render([{"role": "system", "content": probe}, {"role": "user", "content": "hi"}])
        except Exception:  # jinja's raise_exception (Gemma) or any template error: no system role
            return False
        return probe in text  # some templates drop a system message silently

    def _special_ids(self) -> set[int]:
        ids = set(self.tokenizer.all_special_ids)
        for i, tok in getattr(self.tokenizer, "added_tokens_decoder", {}).items():
            if getattr(tok, "special", False):
                ids.add(int(i))
        return ids

    def _end_of_turn_ids(self) -> list[int]:
        """The ids that close an assistant turn, up to and including the first special token."""
        _, suffix = self._split_at_answer([{"role": "user", "content": "hi"}])
        ids = self._ids(suffix)
        special = self._special_ids()
        for k, i in enumerate(ids):
            if i in special:
                return ids[: k + 1]
        eos = self.tokenizer.eos_token_id
        if eos is None:
            raise ValueError(
                "the chat template closes a turn with no special token and the tokenizer has no eos token: "
                "the model could never learn to stop; use a tokenizer with an eos token"
            )
        return [*ids, eos]

    def _split_at_answer(self, prompt_messages: list[dict[str, str]]) -> tuple[str, str]:
        text = self._render([*prompt_messages, {"role": "assistant", "content": _SENTINEL}])
        if text.count(_SENTINEL) != 1:
            raise ValueError("the chat template does not write the assistant's answer verbatim; cannot mask labels")
        head, tail = text.split(_SENTINEL)
        return head, tail

    def _ids(self, text: str) -> list[int]:
        # The template writes special tokens (e.g. <bos>) itself, so the tokenizer must not add more.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # -- encoding -----------------------------------------------------------------------------
    def messages(self, example: Example) -> list[dict[str, str]]:
        """The example's prompt as chat messages (system folded into the user turn when needed)."""
        user = example.prompt()
        if example.system and not self.supports_system:
            return [{"role": "user", "content": f"{example.system}\n\n{user}"}]
        if example.system:
            return [{"role": "system", "content": example.system}, {"role": "user", "content": user}]
        return [{"role": "user", "content": user}]

    def encode(self, example: Example) -> tuple[TokenizedExample | None, str]:
        """(the encoded example or None, the outcome: "kept", "truncated", "prompt_too_long", "empty_answer")."""
        if example.messages is not None and len(example.messages) > 2:
            return self._encode_conversation(example)
        prompt_messages = self.messages(example)
        head, tail = self._split_at_answer(prompt_messages)
        full = self._render([*prompt_messages, {"role": "assistant", "content": example.output}])
        if not (full.startswith(head) and full.endswith(tail)):
            raise ValueError(f"example {example.id}: the chat template changes the prompt depending on the answer")
        answer_text = full[len(head) : len(full) - len(tail)]
        if not answer_text.strip():
            return None, "empty_answer"
        prompt_ids = self._ids(head)
        answer_ids = self._ids(answer_text)
        room = self.max_len - len(prompt_ids)
        if room < 1:
            return None, "prompt_too_long"
        if len(answer_ids) + len(self.end_ids) <= room:
            target = answer_ids + self.end_ids
            outcome = "kept"
        else:
            target = answer_ids[:room]  # cut from the right, and no end-of-turn marker (see module doc)
            outcome = "truncated"
        return (
            TokenizedExample(
                input_ids=prompt_ids + target,
                labels=[IGNORE_INDEX] * len(prompt_ids) + target,
                truncated=outcome == "truncated",
                example_id=example.id,
            ),
            outcome,
        )


    def _turns(self, example: Example) -> list[dict[str, str]]:
        turns = [{"role": m.role, "content": m.content} for m in example.conversation()]
        if example.system and not self.supports_system:
            turns[0] = {"role": "user", "content": f"{example.system}\n\n{turns[0]['content']}"}
        elif example.system:
            turns.insert(0, {"role": "system", "content": example.system})
        return turns

    def _encode_conversation(self, example: Example) -> tuple[TokenizedExample | None, str]:
        """Every assistant turn supervised (with its end-of-turn marker), the rest masked."""
        turns = self._turns(example)
        full = self._render(turns)
        ids: list[int] = []
        labels: list[int] = []
        pos = 0  # how much of `full` is tokenized
        answers = [k for k, t in enumerate(turns) if t["role"] == "assistant"]
        for n, k in enumerate(answers):
            head, _ = self._split_at_answer(turns[:k])
            answer = turns[k]["content"]
            if not (full.startswith(head) and full.startswith(answer, len(head))) or len(head) < pos:
                raise ValueError(f"example {example.id}: the chat template writes earlier turns differently once "
                                 "later ones follow; cannot mask the labels of a conversation with it")
            between = self._ids(full[pos:len(head)])
            if n > 0:  # the previous answer's end-of-turn marker opens this text: trained, the rest masked
                # (an eos the encoder appends to a template without a special end is not in the text)
                plain = self.end_ids[:-1] if self.end_ids[-1:] == [self.tokenizer.eos_token_id] else self.end_ids
                marker = next((len(m) for m in (self.end_ids, plain) if m and between[: len(m)] == m), 0)
                if marker == 0:
                    raise ValueError(f"example {example.id}: the chat template does not close an assistant turn "
                                     "with its end-of-turn marker inside a conversation; cannot train on one")
                labels += between[:marker] + [IGNORE_INDEX] * (len(between) - marker)
            else:
                labels += [IGNORE_INDEX] * len(between)
            ids += between
            answer_ids = self._ids(answer)
            ids += answer_ids
            labels += answer_ids
            pos = len(head) + len(answer)
        ids += self.end_ids  # the last answer's marker; what the template writes after it is left out
        labels += self.end_ids
        first_prompt = next(i for i, y in enumerate(labels) if y != IGNORE_INDEX)
        if first_prompt >= self.max_len:
            return None, "prompt_too_long"
        truncated = len(ids) > self.max_len
        ids, labels = ids[: self.max_len], labels[: self.max_len]
        return TokenizedExample(input_ids=ids, labels=labels, truncated=truncated, example_id=example.id), (
            "truncated" if truncated else "kept")


def encode_example(example: Example, tokenizer: Any, max_len: int) -> TokenizedExample | None:
    """Encode one example (None when dropped: see the module doc). For many, use `encode_examples`."""
    return ChatEncoder(tokenizer, max_len).encode(example)[0]


def encode_examples(
    examples: Sequence[Example], tokenizer: Any, max_len: int
) -> tuple[list[TokenizedExample], EncodeStats]:
    """Encode all examples in order, skipping dropped ones; return them and the counts."""
    encoder = ChatEncoder(tokenizer, max_len)
    stats = EncodeStats(total=len(examples))
    kept: list[TokenizedExample] = []
    for ex in examples:
        encoded, outcome = encoder.encode(ex)
        if encoded is None:
            if outcome == "prompt_too_long":
                stats.dropped_prompt_too_long += 1
            else:
                stats.dropped_empty_answer += 1
            continue
        stats.truncated += encoded.truncated
        stats.tokens += len(encoded)
        stats.supervised_tokens += encoded.num_supervised
        kept.append(encoded)
    stats.kept = len(kept)
    return kept, stats


def _is_chat_file(path: Path) -> bool:
    """Whether `path` holds chat rows ({"messages": [...]}, TRL's conversational format, as
    `python -m factory export --format messages` writes) rather than examples.jsonl's records."""
    import json

    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                try:
                    first = json.loads(line)
                except json.JSONDecodeError:
                    return False  # not for this check to report: the examples reader names the line
                return isinstance(first, dict) and "messages" in first and "instruction" not in first
    return False


def _chat_examples(path: Path) -> list[Example]:
    """Chat rows as examples: a system message (if first) is the system text; the first user and
    assistant turns are instruction and output; a longer conversation is the example's `messages`."""
    from pydantic import BaseModel, ConfigDict

    from schemas import Example, iter_jsonl

    class ChatRow(BaseModel):
        model_config = ConfigDict(extra="allow")
        messages: list[dict[str, Any]]

    examples = []
    for n, row in enumerate(iter_jsonl(path, ChatRow), start=1):
        turns = [{"role": m.get("role"), "content": m.get("content")} for m in row.messages]
        system = turns.pop(0)["content"] if turns and turns[0]["role"] == "system" else ""
        fields: dict[str, Any] = {"id": str(getattr(row, "id", None) or f"row-{n}"), "system": system or ""}
        if len(turns) >= 2:  # the first turn is instruction and output; a longer conversation is `messages`
            fields |= {"instruction": turns[0]["content"], "output": turns[1]["content"]}
        if len(turns) > 2:
            fields["messages"] = turns
        examples.append(Example.model_validate(fields))
    return examples


def load_examples(path: str | Path) -> list[Example]:
    """Read examples.jsonl, or a file of chat rows (the `messages` export); a missing or empty file is an
    error that says so."""
    from schemas import Example, read_jsonl

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no examples file at {path}: generate one first (just generate --run ...)")
    examples = _chat_examples(path) if _is_chat_file(path) else read_jsonl(path, Example)
    if not examples:
        raise ValueError(f"{path} holds no examples: generate some first (just generate --run ...) or pass --data FILE")
    return examples


T = TypeVar("T")


def split_train_eval(examples: Sequence[T], eval_fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """Split into (train, eval), deterministic by seed.

    Eval gets the round(eval_fraction * n) examples (at least one when eval_fraction > 0) with the smallest
    hash of (seed, example id): the split does not depend on file order, and an example keeps its side
    when more examples are added. Items without an `id` (or `example_id`) hash by position. Both lists keep
    the input order.
    """
    if not 0.0 <= eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    n = len(examples)
    if eval_fraction == 0.0 or n == 0:
        return list(examples), []
    n_eval = max(1, round(eval_fraction * n))
    if n_eval >= n:
        raise ValueError(
            f"eval_fraction {eval_fraction} of {n} examples leaves nothing to train on: "
            "lower eval_fraction or add examples"
        )

    def key(i: int) -> tuple[bytes, int]:
        item = examples[i]
        ident = getattr(item, "id", None) or getattr(item, "example_id", None) or f"#{i}"
        return hashlib.sha256(f"{seed}\x00{ident}".encode()).digest(), i

    held_out = set(sorted(range(n), key=key)[:n_eval])
    train = [ex for i, ex in enumerate(examples) if i not in held_out]
    evals = [ex for i, ex in enumerate(examples) if i in held_out]
    return train, evals


# --------------------------------------------------------------------------------------------------
# A run's data: read, encode, split (the loop's first step)


@dataclass
class Data:
    train: list[TokenizedExample]
    eval: list[TokenizedExample]
    stats: dict[str, int]
    pad_id: int


def read_examples(path: Path) -> list[Example]:
    """The examples of `path`; a missing, empty or malformed file is a TrainError (checked before any model
    loads: a wrong file must not first cost a model download)."""
    from trainer.data import load_examples

    try:
        return load_examples(path)
    except (FileNotFoundError, ValueError) as e:
        raise TrainError(str(e)) from e


def prepare_data(settings: TrainSettings, source: Path | Sequence[Example], tokenizer: Any) -> Data:
    """Read (unless given), encode (chat template, prompt masked) and split the examples."""
    from trainer.data import encode_examples, split_train_eval

    path = source if isinstance(source, Path) else "the examples"
    examples = read_examples(source) if isinstance(source, Path) else list(source)
    try:
        encoded, stats = encode_examples(examples, tokenizer, settings.max_len)
        train, held_out = split_train_eval(encoded, settings.eval_fraction, settings.seed)
    except (FileNotFoundError, ValueError) as e:  # bad file, bad template, too few examples: all fixable
        raise TrainError(str(e)) from e
    if not train:
        raise TrainError(f"{path}: no example survived encoding ({stats.as_dict()}): check max_len and the data")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Data(train=train, eval=held_out[: settings.max_eval_examples], stats=stats.as_dict(), pad_id=pad_id)


def data_fingerprint(examples: Sequence[TokenizedExample]) -> str:
    """A hash of the training tokens and labels: a resumed run must see the same data."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(array("q", ex.input_ids).tobytes())
        h.update(array("q", ex.labels).tobytes())
    return h.hexdigest()[:16]
