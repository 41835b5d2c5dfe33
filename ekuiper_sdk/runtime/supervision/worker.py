"""The worker process: serves the plugin's symbols for a supervisor (see ``supervisor``).

The worker is the plugin's own script run again by a fresh interpreter, with
``WORKER_ENV`` naming a private channel. Its ``plugin.start`` lands here: the usual
``PluginRuntime`` serves the symbols and owns every socket to eKuiper, but takes its
commands from the supervisor over that channel instead of from eKuiper, and hands its
runners the :class:`WorkerHooks` through which the supervisor learns what a dead worker
was doing. It leaves when the supervisor does: the channel's pipe drops, or its parent
process changes (SIGKILL included).
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import threading
from typing import Callable, NoReturn

import pynng

from .. import channels
from ..control import PluginRuntime, SymbolTable
from ..hooks import FrameTally, Handler, SupervisionHooks
from ..process import Identity
from .inflight import CallBoard
from .sinkboard import SinkBoard

log = logging.getLogger("ekuiper_sdk")

#: ``0`` when the worker must not join the host's function sockets by itself.
REJOIN_ENV = "EKUIPER_SDK_WORKER_REJOIN"
#: A worker whose plugin code ran out of memory exits with this status (ENOMEM).
EXIT_OUT_OF_MEMORY = 12
#: A worker with a call stuck past its limit exits with this status (see ``watchdog``).
EXIT_HUNG = 70
#: A frame from the supervisor that starts with this (never a command: those are JSON)
#: carries the calls the worker must not run, as JSON (see ``inflight``); sent to every
#: worker before its starts, since a spare was started before the last death.
REFUSE_CALLS = b"\x00refuse "
#: How a worker names itself, and who sends its commands.
WORKER = Identity("worker", "pid", "the supervisor", "its control channel")


class WorkerHooks(SupervisionHooks):
    """What the runners of a worker do for its supervisor: count sink frames and mark
    function calls on the boards the supervisor reads when the worker dies, and end the
    worker when plugin code runs out of memory (a fresh one takes over)."""

    def __init__(self, calls: CallBoard | None, sinks: SinkBoard | None) -> None:
        self.calls = calls
        self.sinks = sinks

    def sink_tally(self, key: str, require_ack: bool) -> FrameTally | None:
        return self.sinks.claim(key, require_ack) if self.sinks is not None else None

    def guard_calls(self, function: str, handle: Handler) -> Handler:
        return self.calls.guard(function, handle) if self.calls is not None else handle

    heals_hung_calls = True

    def call_hung(self, what: str) -> None:
        # The stuck thread cannot be ended from outside: a fresh worker serves instead,
        # and the call on the board is refused there, as a call that crashed one would be.
        log.critical("a call of %s is stuck: this worker exits (status %d) and a fresh one "
                     "takes over", what, EXIT_HUNG)
        logging.shutdown()
        os._exit(EXIT_HUNG)

    def user_code_failed(self, exc: BaseException, what: str) -> None:
        # Out of memory, the process is in no state to go on: exit and let a fresh one start.
        if isinstance(exc, MemoryError):
            log.critical("out of memory in %s: this worker exits (status %d) and a fresh one "
                         "takes over", what, EXIT_OUT_OF_MEMORY)
            logging.shutdown()
            os._exit(EXIT_OUT_OF_MEMORY)

    def refuse_calls(self, data: bytes) -> bytes:
        """Take the calls not to run from the supervisor's frame (see ``REFUSE_CALLS``)."""
        try:
            poison = json.loads(data)
        except ValueError:
            poison = None
        if self.calls is not None and isinstance(poison, dict):
            self.calls.refuse(poison)
        return b"ok"


class SupervisorLink(channels.CommandLink):
    """The worker's end of the private channel: a Pair0 socket that answers commands.

    It serves the supervisor as the runtime would serve eKuiper (``serve``,
    ``on_disconnect``); the first frame it sends, ``handshake``, tells the supervisor the
    worker is ready. A quiet channel needs no keepalive, and its receive has no timeout:
    an idle worker is never woken (a 200 ms poll cost the worker and the spare 10 ms of
    CPU a second). The worker's end does not need the loop to notice: its main thread
    exits the process, as with eKuiper's control channel.
    """

    def __init__(self, url: str, hooks: WorkerHooks) -> None:
        super().__init__(pynng.Pair0(recv_max_size=0), url,
                         what="supervisor link")
        self._hooks = hooks

    def serve(self, handle: Callable[[bytes], bytes], stopped: threading.Event) -> None:
        def handle_or_refuse(frame: bytes) -> bytes:
            if frame.startswith(REFUSE_CALLS):
                return self._hooks.refuse_calls(frame[len(REFUSE_CALLS):])
            return handle(frame)

        super().serve(handle_or_refuse, stopped)


def serve_as_worker(config: SymbolTable, argv: list[str], url: str) -> NoReturn:
    """Serve ``config``'s symbols for the supervisor at ``url``; exits the process.

    Example (what ``roles.serve`` does when ``WORKER_ENV`` is set)::

        serve_as_worker(config, sys.argv, os.environ.pop(WORKER_ENV))
    """
    # A segfault in native code then leaves the Python stacks in the log, whose last lines
    # the supervisor quotes when it reports the death.
    faulthandler.enable()
    hooks = WorkerHooks(CallBoard.from_env(list(config.functions)), SinkBoard.from_env())
    rejoin = os.environ.pop(REJOIN_ENV, "1") != "0"
    PluginRuntime(config, argv, connect=lambda: SupervisorLink(url, hooks), rejoin=rejoin,
                  hooks=hooks, role=WORKER).serve_forever()
