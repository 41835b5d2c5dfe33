"""A running sink instance (docs/protocol.md, "Sink")."""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Callable

import pynng

from .. import hosts
from ..api import Sink
from ..errors import ChannelStopped, SendTimeout
from . import channels, memory, protocol
from .context import SymbolContext, instance_logger
from .hooks import NO_SUPERVISION, FrameTally, SupervisionHooks
from .log_limit import LogLimiter
from .pool import SINKS, ThreadPool
from .runner import Runner, run_guarded
from .watchdog import WATCHDOG

#: Acks nng may hold for a host that has not read them yet (a reading host leaves one).
ACK_BUFFER = 64
#: How long an ack waits for room in that buffer before the host is taken not to read.
ACK_FULL_WAIT_MS = 200


class SinkRunner(Runner):
    """One sink instance: the thread that calls ``collect`` also reads the socket.

    Reading and collecting in one thread costs no hand-over between threads per frame
    (a third of a sink's per-frame CPU time when they were two; docs/performance.md),
    and a slow ``collect`` slows the host down, through nng's buffers, instead of
    filling memory. That thread is a pool thread (:mod:`.pool`), and only while frames
    come: an idle instance parks its socket and has no thread (``SinkInlet``), so idle
    sinks cost no thread and no wake-up however many there are; a frame brings a pool
    thread back, which reads and collects until the socket is idle again. The socket has
    a lock, held while it is read or parked: a stop that finds the
    worker inside a long ``collect`` (or ``open``) takes the socket over in a helper
    thread, reads what already reached it and closes it, so the URL is free at once and
    those frames are collected when ``collect`` returns. The socket is never used by two
    threads at once, and whoever holds the lock closes it.

    Acks: a plugin cannot tell which eKuiper generation runs it, and each reads acks by
    another property (``requireAck`` on 2.x, ``requiredACKs`` on 1.x; see ``hosts``). So
    the sink acks when any generation would read them, and stops for good when the
    frames show this host does not: a host that reads acks sends a frame only after it
    has read the ack of the one before, so two frames waiting at once, or acks that fill
    nng's buffer, mean nobody reads them, and each further ack would wait out its send
    time-out (docs/protocol.md, "requireAck").
    """

    def __init__(self, control: protocol.Control, sink: Sink, plugin: str,
                 send_timeout_ms: int, hooks: SupervisionHooks = NO_SUPERVISION,
                 call_limit: float = 0.0, pool: ThreadPool = SINKS) -> None:
        super().__init__(control, hooks)
        self.sink = sink
        self.logger = instance_logger(plugin, control.meta, control.symbol_name)
        self.require_ack = hosts.any_host_reads_acks(control.config)
        self._failures = LogLimiter(self.logger, max_keys=16)
        self._stopped = threading.Event()
        self._left: list[bytes] = []  # taken from the socket by a stop, not yet collected
        self._acked = False
        self._open_error = ""  # why open failed, one line, for the acks that refuse frames
        self.received = 0  # frames taken from the socket
        self.collected = 0  # frames passed to collect
        self._pool = pool
        self._handle: Callable[[bytes], None] = self._refuse  # until open has returned
        # An idle instance has no thread: its socket waits parked, and a pool thread
        # takes it when a frame comes (docs/architecture.md, "Threads").
        # The parked receive refers to the runner weakly: no cycle keeps a stopped one.
        self.inlet = channels.SinkInlet(protocol.sink_url(control.meta),
                                        on_wake=_waker(weakref.ref(self), pool))
        try:
            # A host that reads acks leaves at most one unread, so a small buffer is never
            # full for it: a full one shows, within a short wait, that nobody reads.
            self.acks = channels.Outlet(protocol.sink_ack_url(control.meta),
                                        min(send_timeout_ms, ACK_FULL_WAIT_MS), "sink",
                                        buffer=ACK_BUFFER, label="sink's ack channel")
        except BaseException:
            self.inlet.close()
            raise
        self.ctx = SymbolContext(control.meta, self.logger, acker=self._ack, plugin=plugin,
                                 symbol=control.symbol_name, config=control.config)
        # Under a supervisor: what this instance took and finished, read if the worker dies.
        self._tally = hooks.sink_tally(control.key, self.require_ack)
        self._watch = WATCHDOG.slot(control.label(), call_limit)  # a collect past the limit

    def start(self) -> None:
        self._pool.submit(self._open)

    def stop(self) -> None:
        self._stopped.set()
        threading.Thread(target=self._release, name=f"release {self.control.key}",
                         daemon=True).start()

    def _release(self) -> None:
        # Ends the wait for frames, parked or not; at once when a thread is in user code.
        self.inlet.seize()
        try:
            if not self.inlet.closed:
                self._left = self.inlet.finish()
        finally:
            self.inlet.lock.release()
        self.released.set()

    def _open(self) -> None:
        try:
            self.sink.open(self.ctx)
            self._handle = self._collect
        except Exception as exc:  # noqa: BLE001 - a plugin's bug must not kill the process
            self.logger.exception("open failed")
            # The cause goes into every refusing ack: the rule's log then says why.
            self._open_error = (protocol.exception_line(exc).splitlines() or [""])[0]
            self._handle = self._refuse
        self.inlet.lock.acquire()
        self._serve(None, linger=False)  # no frame came yet: park at once

    def _woke(self) -> None:
        # On a pool thread: the parked receive ended, and its socket and lock are ours.
        try:
            frames = self.inlet.woken()
        except pynng.NNGException:
            frames = None  # the socket failed: the next look at it says how
        self._serve(frames)

    def _serve(self, frames: list[bytes] | None, linger: bool = True) -> None:
        """Read and collect until the socket is idle (then park it) or the stop.

        Called with ``inlet.lock`` held, and ``frames`` taken already unless None; the
        lock is let go around user code, as a stop may take the socket meanwhile.
        """
        inlet, tally = self.inlet, self._tally
        while True:
            last = False
            if frames is None:
                if inlet.closed:  # a stop took the socket over
                    inlet.lock.release()
                    break
                last = self._stopped.is_set()
                frames = inlet.finish() if last else inlet.take(linger)
                if frames is None:
                    inlet.park()  # the lock stays taken, for the parked receive
                    return
            inlet.lock.release()
            if len(frames) > 1 and self.require_ack and not last:
                self._acks_unread("frames came before the one before them was acked")
            if last:
                self.released.set()
            self._handle_all(frames, self._handle, tally)
            if last:
                break
            inlet.lock.acquire()
            frames, linger = None, True
        self._finish()

    def _finish(self) -> None:
        tally = self._tally
        self._handle_all(self._left, self._handle, tally)
        self._failures.flush(logging.ERROR)  # the failures not yet counted in the log
        run_guarded(self.logger, "close", self._watch.call, self.sink.close, self.ctx,
                    hooks=self.hooks)
        self._watch.close()
        self.acks.close()
        if tally is not None:
            tally.release()
        self.logger.info("closed after collecting %d of the %d frames received",
                         self.collected, self.received)
        self.finished.set()
        memory.TRIM.after_stop()

    def _handle_all(self, frames: list[bytes], handle: Callable[[bytes], None],
                    tally: FrameTally | None) -> None:
        self.received += len(frames)
        if tally is None:
            for frame in frames:
                handle(frame)
            return
        tally.took(len(frames))
        for frame in frames:
            tally.begin()
            handle(frame)
            tally.done()

    def _refuse(self, frame: bytes) -> None:
        if self.require_ack:
            self._send_ack(protocol.encode_ack(f"sink failed to open: {self._open_error}"))

    def _collect(self, frame: bytes) -> None:
        self.collected += 1
        self._acked = False
        try:
            self._watch.call(self.sink.collect, self.ctx, frame)
            error = None
        except Exception as exc:  # noqa: BLE001 - reported as an ack error and logged
            self.hooks.user_code_failed(exc, f"collect of {self.control.label()}")
            error = protocol.exception_line(exc)
            # A collect that fails on every record would log a traceback per frame.
            self._failures.error(type(exc).__qualname__, "collect failed: %s", error, exc_info=True)
        # A rule with requireAck waits for exactly one ack per frame: send the one the
        # plugin did not send itself, so a forgotten ack_ok never stalls the rule.
        if self.require_ack and not self._acked:
            self._send_ack(protocol.encode_ack(error))

    def _ack(self, frame: bytes) -> None:
        if not self.require_ack:
            return  # the host reads no acks unless the rule asks for them
        if self._acked:
            self.logger.warning("a second ack for the same frame was ignored")
            return
        self._acked = True
        self._send_ack(frame)

    def _send_ack(self, frame: bytes) -> None:
        if self._tally is not None:
            self._tally.done()  # before the send: see Tally.done
        if not self.require_ack:
            return  # this host was found not to read acks
        try:
            self.acks.send(frame)
        except ChannelStopped:
            pass  # the rule stopped; nobody waits for this ack any more
        except SendTimeout:
            self._acks_unread(f"{ACK_BUFFER} acks are waiting unread")
        except Exception as exc:  # noqa: BLE001 - a lost ack is logged, never fatal
            self.logger.warning("could not send an ack to eKuiper: %s",
                                protocol.exception_line(exc))

    def _acks_unread(self, evidence: str) -> None:
        """This host does not read acks: stop sending them, and say once how to get them."""
        if not self.require_ack:
            return
        self.require_ack = False
        self.logger.warning(
            "eKuiper does not read this sink's acks (%s), so it sends no more of them; "
            "eKuiper 2.x waits for acks when the rule's sink sets requireAck: true, "
            "1.x when it sets requiredACKs to a whole number", evidence)


def _waker(runner: weakref.ref[SinkRunner], pool: ThreadPool) -> Callable[[], None]:
    """What a parked receive calls on an nng thread: the runner's turn, on the pool."""
    def wake() -> None:
        alive = runner()
        if alive is not None:
            pool.submit(alive._woke)
    return wake
