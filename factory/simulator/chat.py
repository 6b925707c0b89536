"""POST /v1/chat/completions: validation, admission, faults, the simulated answer, latency.

`parse_chat` and `ChatAnswerer.choices` know nothing of HTTP, limits or faults, so the Batch API
(which answers request lines from a file) can reuse them; `ChatHandler` wraps them for HTTP.

Honoured: model, messages (text content), max_tokens / max_completion_tokens, n, temperature,
seed, response_format (text, json_object, json_schema). `tools` count as prompt tokens but are
never called; stop, logprobs, top_p and the like are accepted and ignored; stream is refused.

Determinism: everything random about a request comes from blake2b(seed, request body, ...):
  - the answer text from (seed, body, attempt) when sampling (temperature > 0 and no `seed`
    parameter), else from (seed, body): identical requests then give identical answers;
  - the fault and the latency jitter from (seed, body, fault override, attempt).
`attempt` counts earlier arrivals of the same body (and override), so a retry is a new draw
and results do not depend on how concurrent requests interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import time
from dataclasses import dataclass
from typing import Any

from . import faults, schema_json, text
from .config import SIGNATURE, SimConfig
from . import servers
from .errors import InvalidRequest, error_response, invalid_request_response
from .httpserver import DROP, HANG, Outcome, Request, Response
from .limits import RateLimiter, Rejection, format_reset, retry_after_headers
from .stats import SimStats
from .tokens import PrefixCache, count_tokens, prompt_pieces, truncate_to_tokens

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MAX_N = 128
# No client may ask for more than this per choice (the largest output of current models).
MAX_OUTPUT_TOKENS = 128_000
_JSON_OBJECT_HINT = "json"


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[tuple[str, str, str | None]]  # (role, text content, name)
    max_tokens: int | None
    n: int
    sampled: bool  # answers vary between identical requests
    response_format: str  # "text", "json_object" or "json_schema"
    schema: dict[str, Any] | None
    tools_text: str  # tool definitions as JSON text: they count as prompt tokens

    @property
    def last_user_text(self) -> str:
        return next((c for role, c, _ in reversed(self.messages) if role == "user"), "")

    @property
    def all_text(self) -> str:
        return "\n".join(c for _, c, _ in self.messages)


def _expect_int(payload: dict[str, Any], key: str, low: int, high: int) -> int | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequest(f"Invalid type for '{key}': expected an integer, but got {type(value).__name__} instead.", key, "invalid_type")
    if not low <= value <= high:
        raise InvalidRequest(f"Invalid '{key}': {value}. Expected a value between {low} and {high}.", key, "invalid_value")
    return value


def _content_text(content: Any, index: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in ("text", "input_text", "refusal"):
                raise InvalidRequest(
                    f"Invalid content part in messages[{index}]: the simulator reads only text parts "
                    "({'type': 'text', 'text': ...}).", f"messages[{index}].content", "invalid_value")
            parts.append(str(part.get("text", part.get("refusal", ""))))
        return "\n".join(parts)
    raise InvalidRequest(f"Invalid type for 'messages[{index}].content': expected a string or an array of content parts.",
                         f"messages[{index}].content", "invalid_type")


def parse_chat(payload: Any, *, json_word_rule: bool = True) -> ChatRequest:
    """Check a chat completion request as the API does; raise InvalidRequest on the first problem."""
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    model = payload.get("model")
    if model is None:
        raise InvalidRequest("Missing required parameter: 'model'.", "model", "missing_required_parameter")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("Invalid type for 'model': expected a non-empty string.", "model", "invalid_type")
    raw_messages = payload.get("messages")
    if raw_messages is None:
        raise InvalidRequest("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    if not isinstance(raw_messages, list):
        raise InvalidRequest("Invalid type for 'messages': expected an array of message objects.", "messages", "invalid_type")
    if not raw_messages:
        raise InvalidRequest("Invalid 'messages': empty array. Expected an array with minimum length 1.", "messages", "empty_array")
    messages: list[tuple[str, str, str | None]] = []
    for i, msg in enumerate(raw_messages):
        if not isinstance(msg, dict):
            raise InvalidRequest(f"Invalid type for 'messages[{i}]': expected an object.", f"messages[{i}]", "invalid_type")
        role = msg.get("role")
        if role not in ROLES:
            raise InvalidRequest(f"Invalid value for 'messages[{i}].role': {role!r}. Supported values are: {', '.join(sorted(ROLES))}.",
                                 f"messages[{i}].role", "invalid_value")
        name = msg.get("name")
        messages.append((role, _content_text(msg.get("content"), i), name if isinstance(name, str) else None))

    if payload.get("stream"):
        raise InvalidRequest("The simulator does not stream; send 'stream': false (or leave it out).", "stream", "unsupported_value")
    max_tokens = _expect_int(payload, "max_completion_tokens", 1, MAX_OUTPUT_TOKENS)
    if max_tokens is None:
        max_tokens = _expect_int(payload, "max_tokens", 1, MAX_OUTPUT_TOKENS)
    n = _expect_int(payload, "n", 1, MAX_N) or 1
    temperature = payload.get("temperature", 1.0)
    if temperature is None:
        temperature = 1.0
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not 0 <= temperature <= 2:
        raise InvalidRequest(f"Invalid 'temperature': {temperature!r}. Expected a number between 0 and 2.", "temperature", "invalid_value")
    seed = payload.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise InvalidRequest("Invalid type for 'seed': expected an integer.", "seed", "invalid_type")

    fmt, schema = _response_format(payload.get("response_format"), messages, json_word_rule)
    tools = payload.get("tools")
    tools_text = json.dumps(tools, ensure_ascii=False, sort_keys=True) if tools else ""
    return ChatRequest(model, messages, max_tokens, n, temperature > 0 and seed is None, fmt, schema, tools_text)


def _response_format(value: Any, messages: list[tuple[str, str, str | None]],
                     json_word_rule: bool = True) -> tuple[str, dict[str, Any] | None]:
    if value is None:
        return "text", None
    if not isinstance(value, dict) or value.get("type") not in ("text", "json_object", "json_schema"):
        raise InvalidRequest("Invalid 'response_format': expected {'type': 'text' | 'json_object' | 'json_schema', ...}.",
                             "response_format", "invalid_value")
    kind = value["type"]
    if kind == "json_object":
        if json_word_rule and not any(_JSON_OBJECT_HINT in content.lower() for _, content, _ in messages):
            # OpenAI's own rule: json_object mode needs the word "json" in the messages.
            raise InvalidRequest("'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
                                 "messages", None)
        return kind, None
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise InvalidRequest("Missing required parameter: 'response_format.json_schema.schema' (an object).",
                                 "response_format.json_schema", "missing_required_parameter")
        if not isinstance(spec.get("name"), str) or not spec["name"]:
            raise InvalidRequest("Missing required parameter: 'response_format.json_schema.name'.",
                                 "response_format.json_schema.name", "missing_required_parameter")
        return kind, spec["schema"]
    return "text", None


def digest(*parts: bytes) -> bytes:
    """A 16-byte hash of `parts` (length-prefixed, so no two splits collide): the simulator's seeded draws."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(len(part).to_bytes(4, "little"))
        h.update(part)
    return h.digest()


def unit_draw(d: bytes, offset: int) -> float:
    """A uniform number in [0, 1) from 8 bytes of a digest."""
    return int.from_bytes(d[offset:offset + 8], "little") / 2**64


@dataclass(frozen=True)
class Choice:
    text: str
    finish_reason: str
    completion_tokens: int
    reasoning_tokens: int


class ChatAnswerer:
    """The simulated model: choices for a parsed request, from a seeded generator."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config

    def is_reasoning_model(self, model: str) -> bool:
        return model.startswith(self.config.reasoning_prefixes)

    def choices(self, chat: ChatRequest, r: random.Random, force_length: bool) -> list[Choice]:
        lang = text.detect_language(chat.all_text)
        out = []
        for _ in range(chat.n):
            out.append(self._choice(chat, r, lang, force_length))
        return out

    def _choice(self, chat: ChatRequest, r: random.Random, lang: text.Language, force_length: bool) -> Choice:
        cfg = self.config
        reasoning_model = self.is_reasoning_model(chat.model)
        if chat.response_format == "json_schema":
            assert chat.schema is not None
            content = json.dumps(schema_json.generate(chat.schema, r, lang, cfg.duplicate_share), ensure_ascii=False)
        elif chat.response_format == "json_object":
            content = json.dumps(_generic_object(r, lang), ensure_ascii=False)
        else:
            target = max(1, round(r.gauss(cfg.output_tokens, cfg.output_tokens * cfg.output_spread)))
            # Text past max_tokens would be cut anyway; reasoning and the length fault need the
            # natural length, so they write it all.
            cap = None if force_length or reasoning_model else chat.max_tokens
            content = text.text_of_tokens(r, lang, target, cap)
        visible = count_tokens(content)
        reasoning = round(visible * cfg.reasoning_ratio) if reasoning_model else 0
        limit = chat.max_tokens
        finish = "stop"
        if limit is not None and reasoning >= limit:
            # Reasoning comes first and used up the whole budget: no visible answer at all.
            return Choice("", "length", limit, limit)
        visible_limit = None if limit is None else limit - reasoning
        if force_length:
            half = max(1, visible // 2)
            visible_limit = half if visible_limit is None else min(visible_limit, half)
            finish = "length"
        if visible_limit is not None and visible > visible_limit:
            content = truncate_to_tokens(content, visible_limit)
            visible = visible_limit
            finish = "length"
        return Choice(content, finish, visible + reasoning, reasoning)


def _generic_object(r: random.Random, lang: text.Language) -> dict[str, Any]:
    """json_object mode has no schema: a plausible object with an answer and a few details."""
    return {
        "answer": f"{text.MARKER} {text.sentences(r, lang, r.randint(2, 4))}",
        "keywords": [text.phrase(r, lang) for _ in range(r.randint(2, 4))],
        "confidence": round(r.uniform(0.5, 1.0), 2),
    }


def completion_body(model: str, choices: list[Choice], prompt_tokens: int, cached: int, request_id: str) -> dict[str, Any]:
    """The chat.completion object OpenAI returns (the Batch API's output lines hold the same)."""
    completion_tokens = sum(c.completion_tokens for c in choices)
    return {
        "id": f"chatcmpl-sim{request_id[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": c.text, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": c.finish_reason,
            }
            for i, c in enumerate(choices)
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": sum(c.reasoning_tokens for c in choices), "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": SIGNATURE,
    }


class Attempts:
    """How often each request key was seen (bounded: the oldest keys are forgotten first)."""

    def __init__(self, max_keys: int = 200_000) -> None:
        self._seen: dict[bytes, int] = {}
        self._max_keys = max_keys

    def next(self, key: bytes) -> int:
        n = self._seen.get(key, 0)
        self._seen[key] = n + 1
        if len(self._seen) > self._max_keys:
            for old in list(self._seen)[: self._max_keys // 2]:
                del self._seen[old]
        return n


class ChatHandler:
    def __init__(self, config: SimConfig, limiter: RateLimiter, stats: SimStats) -> None:
        self.config = config
        self.limiter = limiter
        self.stats = stats
        self.answerer = ChatAnswerer(config)
        self.cache = PrefixCache(config.cache_ttl_s)
        self.attempts = Attempts()
        self._seed = str(config.seed).encode()
        self.slots: Any = asyncio.Semaphore(config.slots) if config.slots else contextlib.nullcontext()

    async def __call__(self, req: Request) -> Outcome:
        self.stats.chat_completions += 1
        try:
            payload = json.loads(req.body)
        except (ValueError, UnicodeDecodeError):
            return error_response(400, "We could not parse the JSON body of your request. The API expects a JSON payload "
                                       "(send Content-Type: application/json and a valid JSON body).")
        if (refused := servers.refusal(self.config.server, payload.get("response_format"))) is not None:
            return refused
        payload, json_word_rule = servers.as_openai(self.config.server, payload)
        try:
            chat = parse_chat(payload, json_word_rule=json_word_rule)
            forced = self._forced_fault(req, chat)
        except (InvalidRequest, faults.FaultSpecError) as exc:
            if isinstance(exc, faults.FaultSpecError):
                exc = InvalidRequest(str(exc), faults.FAULT_HEADER, "invalid_value")
            return invalid_request_response(exc)
        if self.config.models and chat.model not in self.config.models:
            return error_response(404, f"The model `{chat.model}` does not exist or you do not have access to it.",
                                  param="model", code="model_not_found")

        pieces = prompt_pieces(chat.messages, chat.tools_text)
        prompt_tokens = len(pieces)
        per_choice = chat.max_tokens if chat.max_tokens is not None else self.config.reserved_output_default
        reserved = prompt_tokens + per_choice * chat.n
        rejection = self.limiter.admit(chat.model, reserved)
        if rejection is not None:
            self.stats.rate_limited += 1
            return self._rate_limited(chat.model, rejection)
        self.stats.tpm_counted += reserved
        headers = self.limiter.headers(chat.model)

        body_key = digest(self._seed, req.body)
        attempt_key = digest(body_key, (forced.kind + "*" + str(forced.times)).encode() if forced else b"")
        attempt = self.attempts.next(attempt_key)
        draw = digest(self._seed, attempt_key, attempt.to_bytes(8, "little"))
        request_id = draw.hex()
        if forced is not None:
            fault = forced.kind if forced.applies(attempt) else None
        else:
            fault = faults.draw(self.config.fault_rates, unit_draw(draw, 0))
        jitter = unit_draw(draw, 8) * self.config.jitter_s
        headers.append(("x-request-id", f"req_{request_id}"))

        if fault is not None and fault not in ("malformed", "length"):
            self.stats.faults[fault] += 1
            return await self._fault(fault, chat.model, headers, jitter)

        content_key = digest(body_key, attempt.to_bytes(8, "little")) if chat.sampled else body_key
        r = random.Random(int.from_bytes(content_key[:8], "little"))
        try:
            choices = self.answerer.choices(chat, r, force_length=fault == "length")
        except schema_json.SchemaError as exc:
            return error_response(400, f"Invalid schema for response_format: {exc}.", param="response_format",
                                  code="invalid_json_schema", headers=headers)
        cached = self.cache.lookup_and_store(chat.model, pieces, time.monotonic())
        completion_tokens = sum(c.completion_tokens for c in choices)
        reasoning_tokens = sum(c.reasoning_tokens for c in choices)
        body = completion_body(chat.model, choices, prompt_tokens, cached, request_id)
        self.limiter.settle(chat.model, reserved, prompt_tokens + completion_tokens)
        if self.limiter.refund_unused:
            self.stats.tpm_counted -= max(0, reserved - prompt_tokens - completion_tokens)
        self.stats.prompt_tokens += prompt_tokens
        self.stats.cached_tokens += cached
        self.stats.completion_tokens += completion_tokens
        self.stats.reasoning_tokens += reasoning_tokens

        delay = self.config.latency_base_s + self.config.latency_per_token_s * completion_tokens + jitter
        headers.append(("openai-processing-ms", str(round(delay * 1000))))
        if delay > 0:
            async with self.slots:  # a server of few slots: the others wait in line
                await asyncio.sleep(delay)
        encoded = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        if fault == "malformed":
            self.stats.faults[fault] += 1
            # Cut the JSON short: a 200 whose body no JSON parser accepts.
            return Response(200, encoded[: max(1, len(encoded) // 2)].encode(), headers)
        if fault == "length":
            self.stats.faults[fault] += 1
        return Response(200, encoded.encode(), headers)

    def _forced_fault(self, req: Request, chat: ChatRequest) -> faults.ForcedFault | None:
        spec = req.headers.get(faults.FAULT_HEADER) or faults.find_trigger(chat.last_user_text)
        return faults.parse_forced(spec) if spec else None

    def _rate_limited(self, model: str, rejection: Rejection) -> Response:
        headers = self.limiter.headers(model)
        what = "requests per min (RPM)" if rejection.kind == "requests" else "tokens per min (TPM)"
        if rejection.wait_s is None:
            message = (f"Request too large for {model} in organization org-simulator on {what}: Limit {rejection.limit}, "
                       f"Requested {rejection.requested}. The input or output tokens must be reduced in order to run "
                       "successfully. (simulated)")
        else:
            message = (f"Rate limit reached for {model} in organization org-simulator on {what}: Limit {rejection.limit}, "
                       f"Used {rejection.used}, Requested {rejection.requested}. Please try again in "
                       f"{format_reset(rejection.wait_s)}. (simulated)")
            headers += retry_after_headers(rejection.wait_s)
        return error_response(429, message, rejection.kind, None, "rate_limit_exceeded", headers)

    async def _fault(self, fault: str, model: str, headers: list[tuple[str, str]], jitter: float) -> Outcome:
        if fault == "hang":
            return HANG
        delay = self.config.latency_base_s + jitter
        if delay > 0:
            await asyncio.sleep(delay)
        if fault == "drop":
            return DROP
        if fault == "429":
            wait = self.config.fault_retry_after_s
            message = (f"Rate limit reached for {model} in organization org-simulator on requests per min (RPM). "
                       f"Please try again in {format_reset(wait)}. (simulated fault)")
            return error_response(429, message, "requests", None, "rate_limit_exceeded", headers + retry_after_headers(wait))
        request_id = next((v for k, v in headers if k == "x-request-id"), "req_simulated")
        messages = {  # OpenAI's 500 names the request, so no two are alike
            "500": ("The server had an error while processing your request. Sorry about that! You can retry your "
                    f"request (Please include the request ID {request_id} in your message.) (simulated fault)"),
            "502": "Bad gateway. (simulated fault)",
            "503": "The engine is currently overloaded, please try again later. (simulated fault)",
            "504": "Gateway timeout. (simulated fault)",
        }
        return error_response(int(fault), messages[fault], "server_error", None, None, headers)
