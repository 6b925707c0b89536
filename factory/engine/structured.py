"""Structured output: whether a server can be asked for a reply that follows a JSON schema, and how.

Servers differ: OpenAI and vLLM take `response_format: {"type": "json_schema", ...}`; llama.cpp's
servers refuse it (llama-cpp-python answers HTTP 500 "Input should be 'text' or 'json_object'") but
take `{"type": "json_object", "schema": ...}` and constrain the reply to the schema with a grammar;
some take neither. So `--structured auto` does not guess: before a run's first request it sends
one small probe through the engine (recorded in the ledger like any request), reads what the
server accepts, and records it in the run's config.toml (`[structured."BASE_URL"]`), so later runs
of the folder do not probe again:

    json_schema   the probe's json_schema reply came back as JSON
    json_object   json_schema was refused with an answer that names json_object, and json_object
                  with the schema came back as JSON (llama.cpp: one failed request in all)
    text          neither: the prompts ask for the plain-text format, and replies are parsed as text

The stages always build their requests with the json_schema form (the ledger key is the same
whatever the server); the engine rewrites it to the server's form as it sends (`wire_form`).
OpenAI models known to lack json_schema go to text without a probe.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from typing import TYPE_CHECKING, Any, Literal

from factory.errors import FatalAPIError
from schemas import CompareFolder, RunFolder

if TYPE_CHECKING:
    from factory.engine.engine import Engine
    from factory.engine.records import ChatResult

log = logging.getLogger("factory.engine")

Mode = Literal["json_schema", "json_object", "text"]
MODES: tuple[Mode, ...] = ("json_schema", "json_object", "text")
PROBE_STAGE = "probe"
PROBE_SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
                "additionalProperties": False}
# An answer that refuses the form itself (not the key, the model or the server being down).
_ABOUT_FORMAT = re.compile(r"response_format|json_schema|json_object|structured|schema", re.IGNORECASE)

# OpenAI models without json_schema response_format (structured outputs came with gpt-4o-2024-08-06
# and gpt-4o-mini; the older ones take json_object at most).
_NO_JSON_SCHEMA_PREFIXES = ("gpt-3.5", "gpt-4-", "gpt-4o-2024-05-13", "o1-mini", "o1-preview", "chatgpt-4o")
_NO_JSON_SCHEMA_EXACT = ("gpt-4", "gpt-4o-2024-05-13")


def wants_structured(setting: str, model: str) -> bool:
    """Structured output as far as the settings alone can tell: `yes`, `no`, or for `auto` every model
    but OpenAI's that refuse json_schema (a probe then asks the server, see `choose_structured`)."""
    if setting != "auto":
        return setting == "yes"
    name = model.lower()
    return not (name in _NO_JSON_SCHEMA_EXACT or name.startswith(_NO_JSON_SCHEMA_PREFIXES))


def json_schema_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The `response_format` the stages send (the engine rewrites it for servers that take another form)."""
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


def wire_form(response_format: Any, mode: Mode) -> Any:
    """`response_format` as the server takes it: json_schema as it is, or as json_object with the schema."""
    if (mode == "json_object" and isinstance(response_format, dict) and response_format.get("type") == "json_schema"
            and isinstance(response_format.get("json_schema"), dict)):
        return {"type": "json_object", "schema": response_format["json_schema"].get("schema", {})}
    return response_format


def recorded_mode(folder: RunFolder | CompareFolder, base_url: str, model: str) -> Mode | None:
    """What an earlier probe of this folder found for this endpoint and model, if any."""
    entry = folder.config_section("structured").get(base_url)
    if isinstance(entry, dict) and entry.get("model") == model and entry.get("format") in MODES:
        return entry["format"]
    return None


async def choose_structured(engine: Engine, setting: str, model: str,
                            folder: RunFolder | CompareFolder | None) -> tuple[bool, str | None]:
    """Whether the run asks for structured replies, with the engine set to send them in the server's
    form; and a line to show when `auto` fell back to text (None otherwise)."""
    if setting == "no" or not wants_structured(setting, model):
        return False, None
    if setting == "yes":
        engine.structured_mode = "json_schema"
        return True, None
    recorded = recorded_mode(folder, engine.settings.base_url, model) if folder is not None else None
    mode, why = (recorded, None) if recorded is not None else await probe(engine, model)
    if recorded is None and folder is not None:
        folder.write_config_section(("structured", engine.settings.base_url), {
            "model": model, "format": mode, "probed": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
    engine.structured_mode = mode if mode != "text" else "json_schema"
    if mode == "text":
        return False, (f"structured output: {engine.settings.base_url} takes neither json_schema nor json_object "
                       f"replies ({why}); the replies are parsed as text (--structured no skips the probe)")
    return True, None


async def probe(engine: Engine, model: str) -> tuple[Mode, str | None]:
    """Ask the server once for a json_schema reply, and for a json_object one only when its refusal
    names json_object. (the mode, why the last form was refused)."""
    refused = await _refusal(engine, model, "json_schema")
    if refused is None:
        return "json_schema", None
    if "json_object" in refused:
        second = await _refusal(engine, model, "json_object")
        if second is None:
            return "json_object", None
        refused = second
    return "text", refused


async def _refusal(engine: Engine, model: str, mode: Mode) -> str | None:
    """None when the server answers a small schema request in `mode` with JSON; else why not."""
    from factory.engine.records import ChatRequest

    request = ChatRequest(
        PROBE_STAGE, model,
        [{"role": "system", "content": "You answer with JSON only."},
         {"role": "user", "content": f'Reply with this JSON object and nothing else: {{"ok": true}} ({mode} probe)'}],
        {"max_tokens": 16, "temperature": 0, "response_format": json_schema_format("probe", PROBE_SCHEMA)},
        meta={"max_attempts": 1},  # a refusal is the answer the probe wants: no retries
    )
    results: list[ChatResult] = []
    before = engine.structured_mode
    engine.structured_mode = mode
    try:
        await engine.run([request], results.append, total=1, quiet=True)
    except FatalAPIError as e:
        if not _ABOUT_FORMAT.search(str(e)):
            raise  # a bad key, an unknown model: every request would fail the same way
        return str(e)
    finally:
        engine.structured_mode = before
    if not results:  # stopped (Ctrl-C, SIGTERM) before the server answered: nothing to record
        raise KeyboardInterrupt("stopped while asking the server which structured output it takes")
    call = results[0].call
    if not results[0].ok:
        error = call.error or "failed"
        log.debug("structured-output probe (%s): refused: %s", mode, error)
        return error
    try:
        reply = json.loads(call.content or "")
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        return f"the {mode} reply was not a JSON object ({(call.content or '')[:60]!r}): the server ignores the form"
    return None


__all__ = ["MODES", "PROBE_STAGE", "Mode", "choose_structured", "json_schema_format", "probe", "recorded_mode",
           "wants_structured", "wire_form"]
