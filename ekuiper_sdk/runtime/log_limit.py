"""Lines that repeat are logged once in full, then counted.

A peer that reconnects in a loop, or a ``collect`` that raises on every record, would
otherwise write one line (or one traceback) per event and fill eKuiper's log. Each kind
of line has a key: its first occurrence is logged as it is; the ones that follow within
``interval_s`` are only counted, and the first one after the interval is logged as a
one-line summary that says how many there were. No timer thread: an idle plugin stays
idle, and a summary is due only when the same thing happens again (or at :meth:`flush`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable
from typing import Any

#: How long repeats of one line are only counted before a summary is logged.
INTERVAL_S = 10.0
#: Keys remembered at most; the oldest is forgotten first (rule ids come and go).
MAX_KEYS = 256


class _Seen:
    __slots__ = ("since", "count", "last")

    def __init__(self, since: float) -> None:
        self.since = since
        self.count = 0       # repeats not yet reported
        self.last = ""       # the last repeat's text, for the summary


class LogLimiter:
    """Rate-limits lines by key: the first in full, then a count per interval."""

    def __init__(self, logger: logging.Logger, interval_s: float = INTERVAL_S,
                 max_keys: int = MAX_KEYS) -> None:
        self._log = logger
        self._interval_s = interval_s
        self._max_keys = max_keys
        self._seen: dict[Hashable, _Seen] = {}
        self._lock = threading.Lock()

    def log(self, level: int, key: Hashable, msg: str, *args: Any,
            exc_info: Any = None) -> bool:
        """Log ``msg % args`` unless ``key`` was logged within the interval; True if logged."""
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(key)
            if seen is None:
                if len(self._seen) >= self._max_keys:
                    self._seen.pop(next(iter(self._seen)))
                self._seen[key] = _Seen(now)
                summary = None
            elif now - seen.since < self._interval_s:
                seen.count += 1
                seen.last = msg % args if args else msg
                return False
            else:
                summary = self._summary(seen, now)
                seen.since, seen.count = now, 0
        if summary is None:
            self._log.log(level, msg, *args, exc_info=exc_info)
        else:  # a repeat: one line, never the traceback again
            text = msg % args if args else msg
            self._log.log(level, "%s%s", text, summary)
        return True

    def warning(self, key: Hashable, msg: str, *args: Any) -> bool:
        return self.log(logging.WARNING, key, msg, *args)

    def error(self, key: Hashable, msg: str, *args: Any, exc_info: Any = None) -> bool:
        return self.log(logging.ERROR, key, msg, *args, exc_info=exc_info)

    def flush(self, level: int = logging.WARNING) -> None:
        """Log a summary for every key whose repeats were not reported yet."""
        now = time.monotonic()
        with self._lock:
            pending = [(seen.last, self._summary(seen, now)) for seen in self._seen.values()
                       if seen.count]
            self._seen.clear()
        for last, summary in pending:
            self._log.log(level, "%s%s", last, summary)

    def _summary(self, seen: _Seen, now: float) -> str:
        if not seen.count:
            return ""
        return f" (and {seen.count} more like it in the last {now - seen.since:.0f} s)"
