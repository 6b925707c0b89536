"""The request engine: many chat requests through one OpenAI-compatible API, rate-limited, retried,
budgeted, and each paid for once (recorded in a run folder's ledger).

    from factory.engine import ChatRequest, Engine, EngineSettings, Ledger
    engine = Engine(settings, Ledger.for_run("runs/demo"))
    stats = await engine.run(requests, on_result, total=len(requests))

Its parts: `records` (request, result, run stats), `engine` (the run loop), `bookkeeping` (its
per-request and per-run state), `client` (the SDK client), `limiter`, `retry`, `ledger`, `writer`
(group commit to the ledger), `pricing` (+ prices.toml), `completion`, `progress`, `tokens` and
`settings`.
"""

from factory.engine.client import api_key_for, http_client_name, openai_client
from factory.engine.engine import Engine
from factory.engine.ledger import Ledger
from factory.engine.pricing import PriceTable, price_table_for
from factory.engine.records import ChatRequest, ChatResult, OnResult, RunStats
from factory.engine.settings import EngineSettings, load_settings

__all__ = [
    "ChatRequest",
    "ChatResult",
    "Engine",
    "EngineSettings",
    "Ledger",
    "OnResult",
    "PriceTable",
    "RunStats",
    "api_key_for",
    "http_client_name",
    "load_settings",
    "price_table_for",
    "openai_client",
]
