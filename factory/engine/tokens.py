"""Token estimates for requests before they are sent (the limiter's and the budget's reservations).

Every number here is an ESTIMATE, labelled with the estimator that made it (`estimator_name`):
what is paid is counted later from the API's `usage`. tiktoken is used when its BPE file is
already on disk; it is never downloaded from here (a download without network can hang for
minutes), so a machine without the cached file gets the fallback at once. To enable tiktoken,
fetch its file once where there is network: python -c "import tiktoken; tiktoken.get_encoding('o200k_base')".
The fallback over-estimates rather than under-estimates, so budgets and rate limits stay safe.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

# Chat formatting overhead per message and per reply, as in OpenAI's token-counting cookbook.
TOKENS_PER_MESSAGE = 4
TOKENS_PER_REPLY = 3


class Estimator(Protocol):
    name: str

    def count(self, text: str) -> int: ...


@dataclass(frozen=True)
class Estimate:
    """A token count that was not reported by the API."""

    tokens: int
    estimator: str

    def __str__(self) -> str:
        return f"~{self.tokens} tokens (estimated by {self.estimator})"


# --- The fallback ----------------------------------------------------------------------------

# Pieces a BPE tokenizer rarely merges across: words, digit groups of 3, single punctuation,
# whitespace runs, and single non-ASCII characters.
_PIECE = re.compile(r"[A-Za-z]+|[0-9]{1,3}|[ \t]+|\n+|[\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e]|[^\x00-\x7f]")


class FallbackEstimator:
    """Over-estimating heuristic used when tiktoken's file is not available.

    English words: one token per 4 letters, at least one (BPE vocabularies hold most words whole,
    so this over-counts long words). Digits: one token per group of 3 (as cl100k/o200k split them).
    Punctuation: one each. Whitespace runs: free when a single space (merged into the next word),
    else one. Non-ASCII characters: one token per 2 UTF-8 bytes, so a Hangul syllable (3 bytes)
    counts 1.5 tokens: cl100k spends about 1 to 2 per syllable, o200k less.
    """

    name = "fallback-heuristic-v1"

    def count(self, text: str) -> int:
        if text.isascii():
            return self._count_ascii(text)
        total = 0.0
        for piece in _PIECE.findall(text):
            c = piece[0]
            if c.isascii():
                total += self._piece_ascii(piece)
            else:
                total += len(c.encode("utf-8")) / 2
        return math.ceil(total)

    def _count_ascii(self, text: str) -> int:
        return sum(self._piece_ascii(p) for p in _PIECE.findall(text))

    @staticmethod
    def _piece_ascii(piece: str) -> int:
        c = piece[0]
        if c.isalpha():
            return (len(piece) + 3) // 4
        if c == " " and len(piece) == 1:
            return 0
        return 1


# --- tiktoken, only from its local cache ------------------------------------------------------


class TiktokenEstimator:
    def __init__(self, encoding: Any) -> None:
        self._encoding = encoding
        self.name = f"tiktoken-{encoding.name}"

    def count(self, text: str) -> int:
        return len(self._encoding.encode(text, disallowed_special=()))


class _NoDownload(RuntimeError):
    pass


_lock = threading.Lock()
_cache: dict[str, Estimator] = {}


def _load_tiktoken_offline(encoding_name: str) -> Any:
    """tiktoken's encoding if its file is cached locally; raises at once instead of downloading."""
    import tiktoken
    import tiktoken.load as tl

    def refuse(blobpath: str) -> bytes:
        if "://" not in blobpath:  # a local path (a tiktoken_ext plugin may ship its file)
            with open(blobpath, "rb") as f:
                return f.read()
        raise _NoDownload(f"{encoding_name} is not in tiktoken's cache (downloading is disabled here)")

    original = tl.read_file
    tl.read_file = refuse  # read_file_cached() calls this only on a cache miss
    try:
        return tiktoken.get_encoding(encoding_name)
    finally:
        tl.read_file = original


def _encoding_name(model: str) -> str:
    try:
        import tiktoken

        return tiktoken.encoding_name_for_model(model)
    except Exception:  # unknown model name, or tiktoken absent: the current default encoding
        return "o200k_base"


def get_estimator(model: str) -> Estimator:
    """The best estimator available for `model`: tiktoken if its file is cached, else the fallback."""
    encoding_name = _encoding_name(model)
    with _lock:
        if encoding_name not in _cache:
            try:
                _cache[encoding_name] = TiktokenEstimator(_load_tiktoken_offline(encoding_name))
            except Exception as e:  # no file, corrupt file, tiktoken missing: all mean "fallback"
                log.info("token estimates use %s: tiktoken unavailable (%s)", FallbackEstimator.name, e)
                _cache[encoding_name] = FallbackEstimator()
        return _cache[encoding_name]


def estimator_name(model: str) -> str:
    """Which estimator `estimate_*` uses for `model`, for labelling reports."""
    return get_estimator(model).name


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    return json.dumps(content, ensure_ascii=False)  # content parts, tool calls: count their JSON


def estimate_message_tokens(messages: Sequence[Mapping[str, Any]], estimator: Estimator) -> int:
    """Input tokens of a chat request: every field of every message plus the chat formatting."""
    total = TOKENS_PER_REPLY
    for m in messages:
        total += TOKENS_PER_MESSAGE
        for field, value in m.items():
            total += estimator.count(_content_text(value))
            if field == "name":
                total += 1
    return total


# Request parameters that the API counts as input (a JSON schema, tool definitions).
_INPUT_PARAMS = ("response_format", "tools", "functions")


def estimate_input(
    model: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any] | None = None
) -> Estimate:
    """Estimated input tokens of a request: its messages, plus any schema or tools it carries."""
    est = get_estimator(model)
    tokens = estimate_message_tokens(messages, est)
    for name in _INPUT_PARAMS:
        if params and params.get(name) is not None:
            tokens += est.count(json.dumps(params[name], ensure_ascii=False))
    return Estimate(tokens, est.name)


def _reset_cache_for_tests() -> None:
    with _lock:
        _cache.clear()
