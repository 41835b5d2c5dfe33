"""The C heap of a plugin process: few malloc arenas, and freed memory handed back.

glibc gives threads malloc arenas of their own (up to eight per core), and keeps what
is freed in them for reuse: a plugin whose rules come and go (each source instance a
thread, eKuiper's sockets allocating on nng's threads) kept megabytes after its rules
were deleted (docs/performance.md, "Memory"). Two arenas are plenty for a process whose
Python code runs one thread at a time, and after instances stop the free pages are
given back with ``malloc_trim``, at most one trim running and one waiting, whatever the
number of stops. Elsewhere than glibc both are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from typing import Any, Callable

from .pool import SINKS

#: ``M_ARENA_MAX`` (malloc.h), and the arenas a plugin process keeps.
_M_ARENA_MAX = -8
ARENAS = 2
#: ``0`` keeps glibc's own arena limit (to measure what this is worth).
ARENAS_ENV = "EKUIPER_SDK_MALLOC_ARENAS"


def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
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


class Trimmer:
    """Gives freed C heap back to the system after stops, coalescing those that overlap.

    >>> ran = []; t = Trimmer(lambda job: job(), trim=lambda: ran.append(1)); t.after_stop()
    >>> ran
    [1]
    """

    def __init__(self, submit: Callable[[Callable[[], None]], None],
                 trim: Callable[[], None] | None = None) -> None:
        self._submit = submit
        self._trim = trim or _malloc_trim
        self._lock = threading.Lock()
        self._queued = False

    def after_stop(self) -> None:
        """Ask for a trim on a pool thread, unless one is already waiting to run."""
        with self._lock:
            if self._queued:
                return
            self._queued = True
        self._submit(self._run)

    def _run(self) -> None:
        with self._lock:
            self._queued = False  # a stop from now on asks for a trim of its own
        self._trim()


def _malloc_trim() -> None:
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


#: The process's trimmer, on the sinks' pool (a trim is short and never blocks).
TRIM = Trimmer(SINKS.submit)
