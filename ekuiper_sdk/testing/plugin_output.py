"""The plugin process's output, as a host keeps it: the last lines, read by a thread.

eKuiper copies a plugin's stdout and stderr into its own log; the test host keeps the
last lines instead, across restarts, so that a test or an error message can show them.
Each process gets a reader thread of its own, so a line the plugin wrote before answering
a command can reach :meth:`PluginOutput.lines` a moment after the answer:
:meth:`PluginOutput.wait` is the way to look for one.
"""

from __future__ import annotations

import collections
import subprocess
import threading
import time
from typing import IO

from ..errors import HostError

__all__ = ["PluginOutput"]

#: How many lines an error message shows by default.
TAIL_LINES = 20


class PluginOutput:
    """The last ``keep`` output lines of one plugin's processes, oldest first.

    Example::

        output = PluginOutput("pysam", keep=100)
        output.follow(proc)              # a Popen with stdout=PIPE, stderr=STDOUT
        output.wait("started source", 5.0)
    """

    def __init__(self, name: str, keep: int, echo: IO[str] | None = None) -> None:
        self.name = name
        self._echo = echo
        self._lines: collections.deque[str] = collections.deque(maxlen=keep)
        self._lock = threading.Lock()
        self._readers: list[threading.Thread] = []

    def follow(self, proc: subprocess.Popen[bytes]) -> None:
        """Read ``proc``'s output on a thread of its own until the process closes it."""
        reader = threading.Thread(target=self._read, args=(proc,), daemon=True,
                                  name=f"ekuiper-host-output-{self.name}")
        reader.start()
        self._readers.append(reader)

    def join(self, timeout: float = 2.0) -> None:
        """Wait for the readers of processes that have ended to read their last lines."""
        for reader in self._readers:
            reader.join(timeout=timeout)

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def tail(self, lines: int = TAIL_LINES) -> str:
        """The last ``lines`` lines, as one indented text."""
        tail = self.lines()[-lines:]
        return "\n".join("  | " + line for line in tail) if tail else "  | (no output)"

    def wait(self, text: str, timeout: float) -> str:
        """The first line containing ``text``, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((line for line in self.lines() if text in line), None)
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                raise HostError(f"plugin {self.name} wrote no line with {text!r} within "
                                f"{timeout:g}s; last output:\n{self.tail()}")
            time.sleep(0.02)

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for raw in iter(proc.stdout.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                with self._lock:
                    self._lines.append(line)
                if self._echo is not None:
                    try:
                        self._echo.write(f"[{self.name}] {line}\n")
                        self._echo.flush()
                    except (OSError, ValueError):
                        pass
