"""What a running instance does differently when a supervisor watches the process.

A runner is given a :class:`SupervisionHooks` when it is made; the defaults do nothing,
which is the whole of a plugin run as one process. A supervised worker passes its own
(``supervision/worker.py``): sink frames counted on a board the supervisor reads when the
worker dies, function calls marked so that a call that killed a worker is refused, and
plugin code out of memory ending the worker so that a fresh one takes over. The hooks are
an object handed down, never a module global, so a runner's constructor says all that
changes its behaviour, and nothing here imports a supervision module.
"""

from __future__ import annotations

from typing import Callable, Protocol

#: How a function channel answers one request (``FunctionRunner.handle``).
Handler = Callable[[bytes], bytes]


class FrameTally(Protocol):
    """One sink instance's count of the frames it took and finished (its own thread)."""

    def took(self, frames: int) -> None: ...

    def begin(self) -> None: ...

    def done(self) -> None: ...

    def release(self) -> None: ...


class SupervisionHooks:
    """The points where supervision reaches the data path; each default does nothing.

    >>> hooks = SupervisionHooks()
    >>> hooks.sink_tally("rule_op_0", require_ack=True) is None
    True
    >>> hooks.guard_calls("revert", bytes.upper)(b"ok")
    b'OK'
    """

    def sink_tally(self, key: str, require_ack: bool) -> FrameTally | None:
        """A tally for a starting sink instance; None counts nothing."""
        return None

    def guard_calls(self, function: str, handle: Handler) -> Handler:
        """``handle`` as the function's channel should run it; by default unchanged."""
        return handle

    #: Whether :meth:`call_hung` ends the process so that a fresh one takes over.
    heals_hung_calls = False

    def call_hung(self, what: str) -> None:
        """A call into plugin code in ``what`` is stuck (``watchdog``); by default the
        runner heals it itself (a single process has nobody to take over)."""

    def user_code_failed(self, exc: BaseException, what: str) -> None:
        """Plugin code raised ``exc`` in ``what``; by default it is only logged (a single
        process has nobody to restart it, so it goes on)."""


#: The hooks of a plugin run as one process.
NO_SUPERVISION = SupervisionHooks()
