"""The C heap of a plugin process: few malloc arenas, and freed memory handed back.

glibc gives threads malloc arenas of their own (up to eight per core), and keeps what
is freed in them for reuse: a plugin whose rules come and go (each source instance a
thread, eKuiper's sockets allocating on nng's threads) kept megabytes after its rules
were deleted (docs/performance.md, "Memory"). Two arenas are plenty for a process whose
Python code runs one thread at a time, and after instances stop the free pages are
given back with ``malloc_trim`` once the stops have settled: a trim right after each
stop ran before most of what the instances held was freed (their threads still ending),
and gave back 1 of 14 MiB. One timed wait per burst of stops, never a periodic one.
Elsewhere than glibc both are no-ops.
"""

from __future__ import annotations

import ctypes
import gc
import os
import threading
import time
from typing import Any, Callable

from .pool import SINKS

#: ``M_ARENA_MAX`` (malloc.h), and the arenas a plugin process keeps.
_M_ARENA_MAX = -8
ARENAS = 2
#: ``0`` keeps glibc's own arena limit (to measure what this is worth).
ARENAS_ENV = "EKUIPER_SDK_MALLOC_ARENAS"


def _libc() -> Any:
    # The process's own symbols, which include the C library's: ctypes.util would find
    # it by name, but imports 1.5 MiB of modules to do so.
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


_LIBC = _libc()


def limit_arenas() -> None:
    """Cap glibc's malloc arenas; call before the process starts its threads.

    An environment's ``MALLOC_ARENA_MAX`` wins, and ``EKUIPER_SDK_MALLOC_ARENAS=0``
    keeps glibc's default.

    >>> limit_arenas()  # idempotent, and harmless where glibc is not
    """
    wanted = os.environ.get(ARENAS_ENV, "").strip()
    if _LIBC is None or "MALLOC_ARENA_MAX" in os.environ or wanted == "0":
        return
    _LIBC.mallopt(_M_ARENA_MAX, int(wanted) if wanted.isdigit() else ARENAS)


#: How long after the last of a burst of stops the heap is trimmed.
SETTLE_S = 1.0


class Trimmer:
    """Gives freed C heap back to the system ``settle_s`` after the last of some stops.

    >>> ran = []; t = Trimmer(lambda job: job(), trim=lambda: ran.append(1), settle_s=0)
    >>> t.after_stop(); ran
    [1]
    """

    def __init__(self, submit: Callable[[Callable[[], None]], None],
                 trim: Callable[[], None] | None = None, settle_s: float = SETTLE_S) -> None:
        self._submit = submit
        self._trim = trim or _malloc_trim
        self._settle_s = settle_s
        self._lock = threading.Lock()
        self._queued = False
        self._due = 0.0

    def after_stop(self) -> None:
        """Ask for a trim on a pool thread once stops have been quiet for ``settle_s``."""
        with self._lock:
            self._due = time.monotonic() + self._settle_s
            if self._queued:
                return  # the waiting trim waits longer
            self._queued = True
        self._submit(self._run)

    def _run(self) -> None:
        while True:
            with self._lock:
                wait = self._due - time.monotonic()
                if wait <= 0:
                    self._queued = False  # a stop from now on asks for a trim of its own
                    break
            time.sleep(wait)
        gc.collect()  # what only cycles held (a stopped instance's leftovers) goes first
        self._trim()


def _malloc_trim() -> None:
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


#: The process's trimmer, on the sinks' pool (a trim is short and never blocks).
TRIM = Trimmer(SINKS.submit)
