"""The simulator application: routes, API-key check, and ways to run it.

Routes (all JSON):
  POST /v1/chat/completions   the simulated model (see chat.py)
  GET  /v1/models             the accepted models (or a few common names when any is accepted)
  GET  /v1/models/{model}     one model, or 404 model_not_found
  GET  /health                {"status": "ok", "simulator": ...}; never needs a key
  GET  /sim/stats             counters (see stats.py); never needs a key

New endpoints register on `Simulator.router` with `add_route`; everything under /v1/ gets the
API-key check. The Batch API (/v1/files, /v1/batches, see batches.py) registers that way; its
counters appear under "batches" in /sim/stats.

Running it:
  - `run_simulator(config)`: a context manager, the server on its own event loop in a thread,
    yields the base URL ("http://127.0.0.1:PORT/v1").
  - `run_simulator_process(config)`: the same in a child process (`python -m factory.simulator`),
    for benchmarks that must not share a core with the client.
  - `await Simulator(config).serve(on_ready, stop)`: inside a running loop (the CLI uses it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .batches import BatchAPI, BatchSimConfig
from .chat import ChatHandler
from .config import API_KEY_ENV, HOST, SIGNATURE, SimConfig
from .errors import error_response
from .httpserver import Handler, HttpServer, Outcome, Request, Response, Router, json_response
from .limits import RateLimiter
from .stats import SimStats

log = logging.getLogger("factory.simulator")

BANNER = "simulator listening on {url} (SIMULATED responses, not a real model)"
URL_RE = re.compile(r"simulator listening on (http://\S+/v1)")
DEFAULT_LISTED_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4-turbo", "o4-mini")
_CREATED = 1_700_000_000  # a fixed "created" for listed models, so listings are deterministic


class SimulatorError(RuntimeError):
    """The simulator could not start (e.g. the port is taken); the message says what to change."""


def mask_key(key: str) -> str:
    """How OpenAI echoes a wrong key: the ends only, never the whole key."""
    return key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "*" * len(key)


class Simulator:
    def __init__(self, config: SimConfig, batch_config: BatchSimConfig | None = None) -> None:
        self.config = config
        self.stats = SimStats()
        self.limiter = RateLimiter(config.rpm or None, config.tpm or None, refund_unused=config.tpm_accounting == "actual",
                                   quantum_s=config.limit_quantum_s)
        self.router = Router()
        self.http = HttpServer(self.dispatch, config.max_body_bytes)
        self.add_route("POST", "/v1/chat/completions", ChatHandler(config, self.limiter, self.stats))
        self.add_route("GET", "/v1/models", self._list_models)
        self.add_route("GET", "/v1/models/{model}", self._get_model)
        self.add_route("GET", "/health", self._health)
        self.add_route("GET", "/sim/stats", self._stats)
        self.batch_api = BatchAPI(config, batch_config)
        self.batch_api.register(self.add_route)

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        self.router.add(method, path, handler)

    async def dispatch(self, req: Request) -> Outcome:
        started = time.perf_counter()
        self.stats.requests += 1
        outcome = await self._route(req)
        if isinstance(outcome, Response):
            self.stats.by_status[outcome.status] += 1
        if self.config.log_requests:
            shown = outcome.status if isinstance(outcome, Response) else outcome
            log.info("%s %s -> %s in %.1f ms", req.method, req.path, shown, (time.perf_counter() - started) * 1000)
        return outcome

    async def _route(self, req: Request) -> Outcome:
        handler, params, known = self.router.match(req.method, req.path)
        if handler is None:
            if known:
                return error_response(405, f"Method {req.method} is not allowed on {req.path}.", code="method_not_supported")
            return error_response(404, f"Unknown request URL: {req.method} {req.path}. Please check the URL for typos.",
                                  code="unknown_url")
        if req.path.startswith("/v1/"):
            denied = self._check_key(req)
            if denied is not None:
                return denied
        req.params = params
        return await handler(req)

    def _check_key(self, req: Request) -> Response | None:
        expected = self.config.api_key
        if expected is None:
            return None
        auth = req.headers.get("authorization", "")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return error_response(401, "You didn't provide an API key. You need to provide your API key in an Authorization "
                                       "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
        given = given.strip()
        if given != expected:
            return error_response(401, f"Incorrect API key provided: {mask_key(given)}. (simulated check)",
                                  code="invalid_api_key")
        return None

    def _model_entry(self, model: str) -> dict[str, object]:
        return {"id": model, "object": "model", "created": _CREATED, "owned_by": SIGNATURE}

    async def _list_models(self, req: Request) -> Outcome:
        names = self.config.models or DEFAULT_LISTED_MODELS
        return json_response(200, {"object": "list", "data": [self._model_entry(m) for m in names]})

    async def _get_model(self, req: Request) -> Outcome:
        model = req.params["model"]
        if self.config.models and model not in self.config.models:
            return error_response(404, f"The model `{model}` does not exist or you do not have access to it.",
                                  param="model", code="model_not_found")
        return json_response(200, self._model_entry(model))

    async def _health(self, req: Request) -> Outcome:
        return json_response(200, {"status": "ok", "simulator": SIGNATURE})

    async def _stats(self, req: Request) -> Outcome:
        snapshot = self.stats.snapshot(self.http.connections_total, self.http.open_connections)
        snapshot["batches"] = self.batch_api.stats()
        return json_response(200, snapshot)

    async def serve(self, on_ready: Callable[[str], None], stop: asyncio.Event) -> None:
        """Serve until `stop` is set; `on_ready(base_url)` once bound."""
        try:
            await self.http.serve(HOST, self.config.port, lambda port: on_ready(f"http://{HOST}:{port}/v1"), stop)
        except OSError as exc:
            raise SimulatorError(f"cannot listen on {HOST}:{self.config.port}: {exc.strerror or exc}; "
                                 "choose another --port (0 picks a free one)") from None


class _ThreadRunner:
    """The simulator on its own event loop in a daemon thread."""

    def __init__(self, config: SimConfig, batch_config: BatchSimConfig | None = None) -> None:
        self.simulator = Simulator(config, batch_config)
        self.base_url = ""
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="factory-simulator", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        def ready(url: str) -> None:
            self.base_url = url
            self._ready.set()

        await self.simulator.serve(ready, self._stop)

    def start(self, timeout_s: float = 10.0) -> str:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise SimulatorError(f"the simulator did not start within {timeout_s} s")
        if self._error is not None:
            raise self._error
        return self.base_url

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass  # the loop has already finished
        self._thread.join(timeout_s)


@contextmanager
def run_simulator(config: SimConfig | None = None, batch_config: BatchSimConfig | None = None) -> Iterator[str]:
    """`with run_simulator(SimConfig(rpm=60, seed=1)) as base_url:` -> "http://127.0.0.1:PORT/v1"."""
    runner = _ThreadRunner(config or SimConfig(), batch_config)
    try:
        yield runner.start()
    finally:
        runner.stop()


@contextmanager
def run_simulator_process(config: SimConfig | None = None, *, start_timeout_s: float = 30.0) -> Iterator[str]:
    """The simulator in a child process (`python -m factory.simulator`); yields the base URL.
    Its log goes to this process's stderr; it is stopped with SIGINT, then killed if stuck."""
    config = config or SimConfig()
    env = dict(os.environ)
    if config.api_key is not None:
        env[API_KEY_ENV] = config.api_key  # not on the command line, where `ps` would show it
    else:
        env.pop(API_KEY_ENV, None)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "") if env.get("PYTHONPATH") else root
    proc = subprocess.Popen(
        [sys.executable, "-m", "factory.simulator", *config.to_cli_args()],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, text=True,
    )
    try:
        url = _read_banner(proc, start_timeout_s)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(2)  # SIGINT: a clean stop that prints the summary
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _read_banner(proc: subprocess.Popen[str], timeout_s: float) -> str:
    assert proc.stdout is not None
    found: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            match = URL_RE.search(line)
            if match:
                found.append(match.group(1))
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout_s)
    if not found:
        proc.kill()
        raise SimulatorError(f"the simulator process did not report its URL within {timeout_s} s "
                             f"(exit code {proc.poll()}); see its stderr above")
    return found[0]


__all__ = ["BANNER", "Simulator", "SimulatorError", "mask_key", "run_simulator", "run_simulator_process"]
