"""What every running instance of a source, sink or function has in common.

A runner is created and started by the control thread, which must answer the host
quickly: ``start`` only does socket work and the user's ``configure`` (bounded by
``USER_CALL_TIMEOUT_S``); ``open``, ``collect`` and ``close`` run in the runner's own
threads. ``stop`` only signals; ``released`` tells when the instance's socket URL is
free again, and ``finished`` when ``close`` has returned.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, TypeVar

from ..errors import UserCodeError
from . import protocol

T = TypeVar("T")

#: How long the control thread waits for a user's factory or ``configure``.
USER_CALL_TIMEOUT_S = 5.0

log = logging.getLogger("ekuiper_sdk")

# Called with what ran out of memory; only a supervised worker sets one (it exits, and a
# fresh worker takes over). A single process has nobody to restart it, so it goes on.
_out_of_memory: Callable[[str], None] | None = None


def set_out_of_memory_handler(handler: Callable[[str], None] | None) -> None:
    """Make a ``MemoryError`` raised by plugin code call ``handler(what)``.

    >>> set_out_of_memory_handler(None)  # the default: logged like any other exception
    """
    global _out_of_memory
    _out_of_memory = handler


def check_out_of_memory(exc: BaseException, what: str) -> None:
    """Hand a ``MemoryError`` from plugin code to the handler, if one is set.

    >>> check_out_of_memory(ValueError("not memory"), "collect")  # returns: not fatal
    """
    if _out_of_memory is not None and isinstance(exc, MemoryError):
        _out_of_memory(what)


def call_user(what: str, fn: Callable[..., T], *args: Any,
              timeout: float = USER_CALL_TIMEOUT_S) -> T:
    """Run user code on a helper thread and wait at most ``timeout`` for it.

    The control channel must never hang on a plugin's ``configure``; a call that
    overruns keeps running in its thread, and its result is discarded.
    """
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, fn(*args)))
        except BaseException as exc:  # noqa: BLE001 - reported to the host, not raised here
            outcome.append((False, exc))

    worker = threading.Thread(target=run, name=f"call {what}", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise UserCodeError(f"{what} did not return within {timeout:g} s")
    ok, value = outcome[0]
    if not ok:
        check_out_of_memory(value, what)
        # Chained, so whoever reports the failure can log the user's traceback.
        raise UserCodeError(f"{what} failed: {protocol.exception_line(value)}") from value
    return value  # type: ignore[no-any-return]


def run_guarded(logger: logging.Logger, what: str, fn: Callable[..., Any], *args: Any) -> bool:
    """Call user code on the current thread; log (never raise) what it raises."""
    try:
        fn(*args)
        return True
    except Exception as exc:  # noqa: BLE001 - a plugin's bug must not kill the process
        check_out_of_memory(exc, what)
        logger.exception("%s failed", what)
        return False


class Runner:
    """What the runtime needs from every running instance."""

    control: protocol.Control

    def __init__(self, control: protocol.Control) -> None:
        self.control = control
        self.released = threading.Event()
        self.finished = threading.Event()

    def start(self) -> None:
        """Start serving; called by the control thread once the instance is registered."""
        raise NotImplementedError

    def stop(self) -> None:
        """Ask the instance to stop; returns at once (``finished`` tells when it has)."""
        raise NotImplementedError
