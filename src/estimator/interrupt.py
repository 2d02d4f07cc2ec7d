"""Ctrl-C that always stops a run.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when SIGINT
arrives; when that is inside a weakref callback or a ``__del__`` (during a garbage collection,
an import, ...) the exception is printed as "ignored" and the run goes on. The handler installed
here also records the request, and the long loops (dask's task loop, the stage loop) call
:func:`check`, which raises again, so a swallowed Ctrl-C still stops the run within a task.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_requested = threading.Event()


def _handler(signum, frame):
    _requested.set()
    raise KeyboardInterrupt


def check() -> None:
    """Raise ``KeyboardInterrupt`` when Ctrl-C was pressed (even if it was swallowed)."""
    if _requested.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Install the handler for the duration of a command (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:  # a background job of a shell without job control
        yield
        return
    _requested.clear()
    signal.signal(signal.SIGINT, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested.clear()
