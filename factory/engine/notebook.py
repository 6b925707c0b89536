"""Running the stages from Python, in a notebook or a script: an async stage called from code that
has an event loop running in its thread (Jupyter runs every cell inside one), and the choice of a
progress display (a bar in a notebook, the usual line elsewhere). Used by the Python API of
`factory` and `judge`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from importlib.util import find_spec
from typing import Any, Literal, TypeVar

import anyio
import anyio.from_thread

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
    has_tqdm = find_spec("tqdm") is not None
    if progress == "bar" and not has_tqdm:
        from factory.errors import SettingsError

        raise SettingsError("progress='bar' needs tqdm: pip install 'instruct-factory[notebook]' "
                            "(or progress='line')")
    return progress == "bar" or (progress == "auto" and in_notebook() and has_tqdm)


def loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_async(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run the coroutine function `fn(*args)` to its end from synchronous code: here when no event
    loop runs in this thread (then Ctrl-C stops it as it stops a command), else in a worker thread
    with a loop of its own, since a loop cannot be started inside another (Jupyter runs every cell
    inside one). There an interrupt (Jupyter's stop button) cancels the run before it is re-raised:
    nothing goes on sending in the background; what was done stays in the ledger and the files."""
    if not loop_running():
        return anyio.run(fn, *args)
    with anyio.from_thread.start_blocking_portal() as portal:
        future = portal.start_task_soon(fn, *args)
        try:
            return _wait(future)
        except KeyboardInterrupt:
            future.cancel()  # the portal's exit waits for the task to end
            raise


def _wait(future: Future[T]) -> T:
    return future.result()  # where a notebook's interrupt arrives (KeyboardInterrupt in this thread)
