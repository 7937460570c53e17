"""One background thread per process that flushes batched observability (metrics, access lines).

Serving's request path hands its metric updates and its access line to in-memory batches (a few list
operations) instead of writing them one request at a time; this thread writes the batches every
``interval`` seconds. Each flush function also runs on demand (``flush_all``: ``/metrics`` in this
process, a worker's exit), so nothing is lost on a graceful stop; a ``kill -9`` loses at most the last
``interval`` of metric updates and access lines, never a prediction (the prediction log is spooled
durably before the response leaves).

The thread is started on first use in each process (also after a fork) and is a daemon; a failing flush
function is logged and does not stop the others.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger("slipway.flusher")

_functions: list[Callable[[], None]] = []
_lock = threading.Lock()
_thread_pid: int | None = None
_interval = 0.25


def register(fn: Callable[[], None]) -> None:
    """Add a flush function (once; call at import time)."""
    if fn not in _functions:
        _functions.append(fn)


def ensure_running(interval: float) -> None:
    """Start this process's flusher thread if it is not running (cheap when it is)."""
    global _thread_pid, _interval
    if _thread_pid is not None:
        return
    with _lock:
        if _thread_pid is not None:
            return
        _interval = max(0.01, interval)
        threading.Thread(target=_loop, name="slipway-observability-flush", daemon=True).start()
        _thread_pid = os.getpid()


def _forked() -> None:
    global _thread_pid, _lock
    _thread_pid = None  # threads do not survive a fork: the child starts its own on first use
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forked)


def flush_all() -> None:
    for fn in list(_functions):
        try:
            fn()
        except Exception:  # noqa: BLE001 - one broken sink must not stop the others
            log.exception("Flushing batched observability failed", extra={"function": getattr(fn, "__qualname__", "")})


def _loop() -> None:
    while True:
        time.sleep(_interval)
        flush_all()
