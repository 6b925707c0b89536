"""The request engine: many chat requests through one OpenAI-compatible API, rate-limited, retried,
budgeted, and each paid for once (recorded in a run folder's ledger).

    from factory.engine import ChatRequest, Engine, EngineSettings, Ledger
    engine = Engine(settings, Ledger.for_run("runs/demo"))
    stats = await engine.run(requests, on_result, total=len(requests))

Its parts: `records` (request, result, run stats), `engine` (the run loop), `bookkeeping` (its
per-request and per-run state), `client` (the SDK client), `limiter`, `retry`, `ledger`, `writer`
(group commit to the ledger), `pricing` (+ prices.toml), `completion`, `progress`, `tokens`,
`structured` (JSON-schema replies), `notebook` (running from Jupyter) and `settings`.

This `__all__` is the engine's public face: what the judge (which runs its gradings through this
engine) may import from the factory, besides `factory`, `factory.batch`, `factory.cost` and
`factory.simulator`'s own (tests/test_layering.py holds it).
"""

from factory.engine.budget import WorstCase, budget_use, worst_case
from factory.engine.client import api_key_for, http_client_name, openai_client
from factory.engine.engine import Engine
from factory.engine.ledger import Ledger
from factory.engine.notebook import ProgressMode, run_async, wants_bar
from factory.engine.money import usd
from factory.engine.pricing import PriceTable, price_table_for
from factory.engine.progress import ProgressBar, use_display
from factory.engine.records import ChatRequest, ChatResult, OnResult, RunStats
from factory.engine.settings import (
    GIVEN_AS,
    EngineSettings,
    add_engine_arguments,
    engine_settings_from_args,
    load_settings,
    settings_from,
)
from factory.engine.structured import choose_structured, json_schema_format, wants_structured

__all__ = [
    "GIVEN_AS",
    "ChatRequest",
    "ChatResult",
    "Engine",
    "EngineSettings",
    "Ledger",
    "OnResult",
    "PriceTable",
    "ProgressBar",
    "ProgressMode",
    "RunStats",
    "WorstCase",
    "add_engine_arguments",
    "api_key_for",
    "budget_use",
    "choose_structured",
    "engine_settings_from_args",
    "http_client_name",
    "json_schema_format",
    "load_settings",
    "openai_client",
    "price_table_for",
    "run_async",
    "settings_from",
    "usd",
    "use_display",
    "wants_bar",
    "wants_structured",
    "worst_case",
]
