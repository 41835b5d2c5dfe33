"""The plugin's output lines as ``ekuiper-plugin run`` shows them: by log level.

The runtime logs ``<date> <time> LEVEL name: message`` (``runtime.control``), the official
SDK ``<date> <time> - file[line:N] - LEVEL: message``; a line in
another form (a ``print``, a traceback's body, an import error before logging is set up)
belongs to the logged line above it when it is indented or part of a traceback, and is
shown like a warning otherwise: it is what the plugin chose to write.
"""

from __future__ import annotations

import re
import threading
from typing import IO

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "WARN": 30, "ERROR": 40, "CRITICAL": 50,
          "FATAL": 50}
# This runtime's "<date> <time> LEVEL name: ..." and the official SDK's
# "<date> <time> - file[line:N] - LEVEL: ...": a line that starts with a date and has a level.
_LOGGED = re.compile(r"^\d{4}-\d\d-\d\d[ T]\S+ .{0,200}?"
                     r"\b(?P<level>DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\b")
_PLAIN = 30


def line_level(line: str, previous: int = _PLAIN) -> int:
    """The log level of one output line, given the level of the line before it.

    >>> line_level("2026-01-01 10:00:00,1 INFO ekuiper_sdk: plugin demo starting")
    20
    >>> line_level("  File 'x.py', line 3", previous=40), line_level("hello")
    (40, 30)
    """
    if not line.strip():
        return previous   # a blank line goes with the line above
    match = _LOGGED.match(line)
    if match:
        return LEVELS[match.group("level")]
    # A traceback's body is indented; its last line ("ValueError: boom") is not.
    if line.startswith("Traceback"):
        return max(previous, 40)
    if line[:1].isspace() or (previous >= 40 and ":" in line):
        return previous
    return _PLAIN


class LevelFilter:
    """A text stream for :class:`PluginHost`'s ``echo``: writes the lines at or above
    ``level`` to ``out`` and counts what it showed and what it held back.

    Example::

        shown = LevelFilter(sys.stderr, level=30)
        host = PluginHost("demo", "main.py", echo=shown)   # type: ignore[arg-type]
    """

    def __init__(self, out: IO[str], level: int = 30) -> None:
        self.out = out
        self.level = level
        self.shown = 0
        self.hidden = 0
        self.problems = 0
        self._previous = _PLAIN
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        """Take one ``[name] line`` from the host's output reader."""
        with self._lock:
            for line in text.splitlines():
                body = line.split("] ", 1)[1] if line.startswith("[") and "] " in line \
                    else line
                level = line_level(body, self._previous)
                self._previous = level
                if level >= 30:
                    self.problems += 1
                if level >= self.level:
                    self.shown += 1
                    self.out.write(line + "\n")
                else:
                    self.hidden += 1
        return len(text)

    def flush(self) -> None:
        """Flush ``out``."""
        self.out.flush()
