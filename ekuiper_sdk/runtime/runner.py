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
from .hooks import NO_SUPERVISION, SupervisionHooks
from .watchdog import stack_block, where_is

T = TypeVar("T")

#: How long the control thread waits for a user's factory or ``configure``.
USER_CALL_TIMEOUT_S = 5.0

log = logging.getLogger("ekuiper_sdk")

def call_user(what: str, fn: Callable[..., T], *args: Any,
              timeout: float = USER_CALL_TIMEOUT_S,
              hooks: SupervisionHooks = NO_SUPERVISION) -> T:
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
        # Logged as the watchdog logs a stuck call: where it is, with every thread's stack.
        log.error("%s", stack_block(worker.ident or 0, (
            f"{what} is stuck: it did not return within {timeout:g} s, in "
            f"{where_is(worker.ident or 0)}; its thread stays; every thread's stack follows")))
        raise UserCodeError(f"{what} did not return within {timeout:g} s")
    ok, value = outcome[0]
    if not ok:
        hooks.user_code_failed(value, what)
        # Chained, so whoever reports the failure can log the user's traceback.
        raise UserCodeError(f"{what} failed: {protocol.exception_line(value)}") from value
    return value  # type: ignore[no-any-return]


def run_guarded(logger: logging.Logger, what: str, fn: Callable[..., Any], *args: Any,
                hooks: SupervisionHooks = NO_SUPERVISION) -> bool:
    """Call user code on the current thread; log (never raise) what it raises."""
    try:
        fn(*args)
        return True
    except Exception as exc:  # noqa: BLE001 - a plugin's bug must not kill the process
        hooks.user_code_failed(exc, what)
        logger.exception("%s failed", what)
        return False


class Runner:
    """What the runtime needs from every running instance."""

    control: protocol.Control

    def __init__(self, control: protocol.Control,
                 hooks: SupervisionHooks = NO_SUPERVISION) -> None:
        self.control = control
        #: What changes when a supervisor watches the process (nothing, by default).
        self.hooks = hooks
        self.released = threading.Event()
        self.finished = threading.Event()

    def start(self) -> None:
        """Start serving; called by the control thread once the instance is registered."""
        raise NotImplementedError

    def stop(self) -> None:
        """Ask the instance to stop; returns at once (``finished`` tells when it has)."""
        raise NotImplementedError
