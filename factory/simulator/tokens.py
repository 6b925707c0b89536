"""The simulator's tokenizer and its prompt cache.

Tokenizer (deterministic, cheap, no vocabulary file): a token is optional leading whitespace
followed by one of
  - up to 8 ASCII letters   ("instruction" -> "instruct", "ion"),
  - up to 3 digits,
  - one Hangul syllable,
  - any other single non-space character (punctuation, symbols, other scripts),
and a whitespace run at the very end is one token. The pieces concatenate back to the text
exactly, so a completion can be cut at any token count. English comes out near tiktoken's
~1.3 tokens per word; Korean at one token per syllable (cl100k is in the same range).

Prompt tokens follow OpenAI's chat accounting: 3 tokens per message (role and separators),
+1 for a `name`, +3 that prime the reply, plus the content tokens.

Prompt caching follows OpenAI: prompts of at least 1024 tokens, cached in 128-token
increments, for prefixes seen within `ttl_s` (OpenAI keeps them 5-10 minutes idle), per model.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

TOKEN_RE = re.compile(r"\s*(?:[A-Za-z]{1,8}|\d{1,3}|[\uac00-\ud7a3]|\S)|\s+")

PER_MESSAGE = 3
PER_NAME = 1
REPLY_PRIMING = 3
CACHE_MIN_TOKENS = 1024
CACHE_STEP_TOKENS = 128


def tokenize(text: str) -> list[str]:
    return TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    return len(TOKEN_RE.findall(text))


def truncate_to_tokens(text: str, limit: int) -> str:
    """The first `limit` tokens of `text` (all of it when shorter)."""
    pieces = TOKEN_RE.findall(text)
    return text if len(pieces) <= limit else "".join(pieces[:limit])


def prompt_pieces(messages: Sequence[tuple[str, str, str | None]], extra: str = "") -> list[str]:
    """The token pieces of a chat prompt: (role, content, name) per message, then `extra`
    (e.g. tool definitions), then the reply priming. Role markers count as tokens, so the
    same text under a different role is a different prefix, as in a real cache."""
    pieces: list[str] = []
    for role, content, name in messages:
        pieces += ("<|start|>", role, "<|message|>")
        pieces += TOKEN_RE.findall(content)
        if name is not None:
            pieces.append(f"<|name:{name}|>")
    if extra:
        pieces += TOKEN_RE.findall(extra)
    pieces += ("<|start|>", "assistant", "<|message|>")
    return pieces


class PrefixCache:
    """Remembers hashes of long prompt prefixes at 128-token boundaries; reports the longest
    boundary seen within the TTL. Bounded: the oldest entries go first beyond `max_entries`."""

    def __init__(self, ttl_s: float, max_entries: int = 200_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._seen: dict[bytes, float] = {}  # insertion order = last use order

    def __len__(self) -> int:
        return len(self._seen)

    def lookup_and_store(self, model: str, pieces: Sequence[str], now: float) -> int:
        """Cached tokens for this prompt; then remember its prefixes as used at `now`."""
        total = len(pieces)
        if total < CACHE_MIN_TOKENS or self._ttl_s <= 0:
            return 0
        h = hashlib.blake2b(model.encode(), digest_size=16)
        cached = 0
        start = 0
        boundary = CACHE_MIN_TOKENS
        while boundary <= total:
            # \x1f between pieces so that ["ab", "c"] and ["a", "bc"] hash differently.
            h.update("\x1f".join(pieces[start:boundary]).encode() + b"\x1e")
            key = h.copy().digest()
            seen_at = self._seen.pop(key, None)
            if seen_at is not None and now - seen_at <= self._ttl_s:
                cached = boundary
            self._seen[key] = now
            start = boundary
            boundary += CACHE_STEP_TOKENS
        if len(self._seen) > self._max_entries:
            self._evict(now)
        return cached

    def _evict(self, now: float) -> None:
        expired = [k for k, t in self._seen.items() if now - t > self._ttl_s]
        for k in expired:
            del self._seen[k]
        overflow = len(self._seen) - self._max_entries // 2
        if overflow > 0:
            for k in list(self._seen)[:overflow]:
                del self._seen[k]
