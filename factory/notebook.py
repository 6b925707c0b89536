"""Running the stages from Python, in a notebook or a script: an async stage called from code that
has an event loop running in its thread (Jupyter runs every cell inside one), and the choice of a
progress display (a bar in a notebook, the usual line elsewhere). Used by the Python API of
`factory` and `judge`.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from typing import Any, Literal, TypeVar

import anyio

T = TypeVar("T")

# auto: a bar in a notebook, the line elsewhere; bar / line: that one; none: nothing.
ProgressMode = Literal["auto", "bar", "line", "none"]


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (Jupyter, JupyterLab, VS Code, Colab)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and (type(shell).__name__ == "ZMQInteractiveShell" or "google.colab" in sys.modules)


def wants_bar(progress: ProgressMode) -> bool:
    if progress not in ("auto", "bar", "line", "none"):
        from factory.errors import SettingsError

        raise SettingsError(f"progress={progress!r}: use 'auto', 'bar', 'line' or 'none'")
    # auto falls back to the line where tqdm is not installed (the `notebook` extra brings it)
    return progress == "bar" or (progress == "auto" and in_notebook() and find_spec("tqdm") is not None)


def loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def call_blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)`, which may start its own event loop (anyio.run): here when no loop runs
    in this thread, else in a worker thread (a loop cannot be started inside another). The worker
    gets this thread's context variables (the progress display)."""
    if not loop_running():
        return fn(*args, **kwargs)
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="instruct-factory") as pool:
        return pool.submit(context.run, fn, *args, **kwargs).result()


def run_async(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run the coroutine function `fn(*args)` to its end from synchronous code (see call_blocking)."""
    return call_blocking(anyio.run, fn, *args)
