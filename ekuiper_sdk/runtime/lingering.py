"""Source ``open`` calls that never return after their stop: reported, counted, capped.

Python cannot end a thread from outside, so a source whose ``open`` ignores ``close``
(a blocking read with no timeout) keeps its thread, its context and what its frames
hold for the life of the process. Such a thread is logged once, with where it is
blocked, and counted; past :data:`MAX_PER_SYMBOL` of one source symbol, new starts of
that symbol are refused with an error the rule shows, so a rule restarted in a loop
cannot grow the process without bound. A thread that returns at last stops counting.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
from typing import Callable

from ..errors import UserCodeError
from .log_limit import LogLimiter
from .watchdog import stack_block

#: How long after ``close`` returned a stopped source's ``open`` may take to return, when
#: the source has no call limit (``watchdog``); with one, the limit is that time.
LINGER_S = 5.0
#: Stuck ``open`` threads of one source symbol beyond which its starts are refused.
MAX_PER_SYMBOL = 16

_SDK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def linger_s(call_limit: float) -> float:
    """How long a stopped source's ``open`` may take to return: its call limit, if any.

    >>> linger_s(0.0), linger_s(2.0)
    (5.0, 2.0)
    """
    return call_limit if call_limit > 0 else LINGER_S


def blocked_at(thread: threading.Thread) -> str:
    """Where ``thread`` is now: its innermost frame, and the innermost of the plugin's own."""
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None:
        return "an unknown place"
    stack = traceback.extract_stack(frame)
    where = [f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}" for f in stack[-1:]]
    own = [f for f in stack if not f.filename.startswith((_SDK_DIR, sys.prefix,
                                                          sys.base_prefix))]
    if own and own[-1] is not stack[-1]:
        f = own[-1]
        where.append(f"called from {f.filename}:{f.lineno} in {f.name}")
    return ", ".join(where)


class Lingering:
    """The stuck ``open`` threads of this process, by source symbol."""

    def __init__(self, max_per_symbol: int = MAX_PER_SYMBOL) -> None:
        self.max_per_symbol = max_per_symbol
        self._lock = threading.Lock()
        self._threads: dict[str, list[threading.Thread]] = {}
        self._log = LogLimiter(logging.getLogger("ekuiper_sdk"))
        #: Called (no arguments) when a stuck thread is reported (the status file).
        self.on_change: Callable[[], None] | None = None

    def _alive(self, symbol: str) -> list[threading.Thread]:
        threads = [t for t in self._threads.get(symbol, []) if t.is_alive()]
        if threads:
            self._threads[symbol] = threads
        else:
            self._threads.pop(symbol, None)
        return threads

    def count(self, symbol: str | None = None) -> int:
        """How many are stuck now, of ``symbol`` or of every source."""
        with self._lock:
            symbols = [symbol] if symbol is not None else list(self._threads)
            return sum(len(self._alive(s)) for s in symbols)

    def track(self, thread: threading.Thread, symbol: str) -> None:
        """Count ``thread`` from its instance's stop until its ``open`` returns.

        Counted at once, not only once reported: a rule restarted in a tight loop would
        otherwise start many more before the first is :data:`LINGER_S` late. A healthy
        ``open`` returns within moments of ``close``, so it counts only that long.
        """
        with self._lock:
            self._threads.setdefault(symbol, []).append(thread)

    def returned(self, thread: threading.Thread, symbol: str) -> None:
        """``thread``'s ``open`` has returned: forget it now, not at the symbol's next
        start (a plugin whose rules all went would keep every one of them)."""
        with self._lock:
            threads = self._threads.get(symbol, [])
            if thread in threads:
                threads.remove(thread)
            if not threads:
                self._threads.pop(symbol, None)

    def report(self, thread: threading.Thread, symbol: str, label: str,
               after_s: float = LINGER_S) -> None:
        """Log ``thread``, still in ``open`` ``after_s`` after its stop (rate-limited), with
        every thread's stack as the watchdog logs a stuck call."""
        where = blocked_at(thread)
        with self._lock:
            here = len(self._alive(symbol))
        total = self.count()
        headline = (
            f"{label} is stopped but its open() has not returned {after_s:g} s after close(); "
            f"its thread stays, blocked at {where} ({here} such threads of {symbol!r}, {total} "
            f"in this process; at {self.max_per_symbol} its starts are refused: make open() "
            "return when close() is called); every thread's stack follows")
        self._log.warning(symbol, "%s", stack_block(thread.ident or 0, headline))
        if self.on_change is not None:
            self.on_change()

    def check_room(self, symbol: str) -> None:
        """Refuse a start of ``symbol`` when too many of its ``open`` threads are stuck."""
        stuck = self.count(symbol)
        if stuck >= self.max_per_symbol:
            raise UserCodeError(
                f"{stuck} earlier instances of source {symbol!r} are stopped but their open() "
                "never returned; no more are started in this process: make open() return "
                "when close() is called, then restart the plugin")


#: The process's registry.
LINGERING = Lingering()
