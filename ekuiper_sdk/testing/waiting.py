"""Waiting, in a test, for what a plugin does in its own time."""

from __future__ import annotations

import time
from typing import Callable


def wait_for(check: Callable[[], object], timeout: float = 5.0,
             what: str = "condition") -> None:
    """Poll ``check`` until it returns something true; ``AssertionError`` after ``timeout``.

    For what a plugin does in its own time (a sink writing a file, a source closing).

    Example::

        wait_for(lambda: out.exists(), 5, "the sink writing its file")
    """
    give_up = time.monotonic() + timeout
    while not check():
        if time.monotonic() > give_up:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.02)
