"""Running instances of sources, sinks and functions.

A runner is created and started by the control thread, which must answer the host
quickly: ``start`` only does socket work and the user's ``configure`` (bounded by
``USER_CALL_TIMEOUT_S``); ``open``, ``collect`` and ``close`` run in the runner's own
threads. ``stop`` only signals; ``released`` tells when the instance's socket URL is
free again, and ``finished`` when ``close`` has returned.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable, List, Optional, TypeVar

from . import channels, protocol
from .api import Function, Sink, Source
from .context import SymbolContext, instance_logger

T = TypeVar("T")

#: How long the control thread waits for a user's factory or ``configure``.
USER_CALL_TIMEOUT_S = 5.0
#: Frames a sink holds in memory between the socket reader and ``collect``.
SINK_QUEUE_FRAMES = 1024

log = logging.getLogger("ekuiper_sdk")


class SymbolStopped(channels.ChannelStopped):
    """Raised by ``ctx.emit`` once the source's rule stopped; ends an ``open`` loop quietly."""


class UserCodeError(Exception):
    """User code failed or took too long while the control thread waited for it."""


def call_user(what: str, fn: Callable[..., T], *args: Any,
              timeout: float = USER_CALL_TIMEOUT_S) -> T:
    """Run user code on a helper thread and wait at most ``timeout`` for it.

    The control channel must never hang on a plugin's ``configure``; a call that
    overruns keeps running in its thread, and its result is discarded.
    """
    outcome: List[Any] = []

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
        # Chained, so whoever reports the failure can log the user's traceback.
        raise UserCodeError(f"{what} failed: {protocol.describe_exception(value)}") from value
    return value  # type: ignore[no-any-return]


def run_guarded(logger: logging.Logger, what: str, fn: Callable[..., Any], *args: Any) -> bool:
    """Call user code on the current thread; log (never raise) what it raises."""
    try:
        fn(*args)
        return True
    except Exception:  # noqa: BLE001 - a plugin's bug must not kill the process
        logger.exception("%s failed", what)
        return False


class Runner:
    """What the runtime needs from every running instance."""

    control: protocol.Control

    def __init__(self, control: protocol.Control) -> None:
        self.control = control
        self.released = threading.Event()
        self.finished = threading.Event()

    def stop(self) -> None:
        raise NotImplementedError


class SourceRunner(Runner):
    """One source instance: ``open`` runs in its own thread and emits over a PUSH socket."""

    def __init__(self, control: protocol.Control, source: Source, plugin: str,
                 send_timeout_ms: int) -> None:
        super().__init__(control)
        self.source = source
        self.logger = instance_logger(plugin, control.meta, control.symbol_name)
        self.outlet = channels.Outlet(protocol.source_url(control.meta), send_timeout_ms,
                                      "source", channels.SOURCE_SEND_BUFFER)
        self.ctx = SymbolContext(control.meta, self.logger, emitter=self._emit, plugin=plugin,
                                 symbol=control.symbol_name, config=control.config)
        self._close_once = threading.Lock()
        self._closed = False

    def _emit(self, frame: bytes) -> None:
        try:
            self.outlet.send(frame)
        except channels.ChannelStopped:
            raise SymbolStopped(f"{self.control.describe()} was stopped") from None

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"source {self.control.key}", daemon=True).start()

    def _run(self) -> None:
        try:
            self.source.open(self.ctx)
        except channels.ChannelStopped:
            pass  # emit after stop: the expected way for an open loop to end
        except Exception:  # noqa: BLE001 - logged; the instance stays until the rule stops it
            self.logger.exception("open failed")

    def stop(self) -> None:
        # Close the socket now (so nothing more reaches the host and the URL is free),
        # then let close() run away from the control thread.
        self.outlet.close()
        self.released.set()
        threading.Thread(target=self._close, name=f"close {self.control.key}",
                         daemon=True).start()

    def _close(self) -> None:
        with self._close_once:
            if not self._closed:
                self._closed = True
                run_guarded(self.logger, "close", self.source.close, self.ctx)
        self.finished.set()


class SinkRunner(Runner):
    """One sink instance: a reader thread owns the PULL socket, a worker calls ``collect``.

    Two threads so that a slow ``collect`` never keeps the socket open after a stop, and a
    bounded queue between them so a slow ``collect`` slows the host down instead of
    filling memory.
    """

    def __init__(self, control: protocol.Control, sink: Sink, plugin: str,
                 send_timeout_ms: int) -> None:
        super().__init__(control)
        self.sink = sink
        self.logger = instance_logger(plugin, control.meta, control.symbol_name)
        self.require_ack = control.config.get("requireAck") is True
        self._stopped = threading.Event()
        self._frames: "queue.Queue[Optional[bytes]]" = queue.Queue(SINK_QUEUE_FRAMES)
        self._acked = False
        self._overflow: List[bytes] = []
        self.received = 0
        self.collected = 0
        self.inlet = channels.SinkInlet(protocol.sink_url(control.meta))
        try:
            self.acks = channels.Outlet(protocol.sink_ack_url(control.meta), send_timeout_ms,
                                        "sink")
        except BaseException:
            self.inlet.close()
            raise
        self.ctx = SymbolContext(control.meta, self.logger, acker=self._ack, plugin=plugin,
                                 symbol=control.symbol_name, config=control.config)

    def start(self) -> None:
        threading.Thread(target=self._read, name=f"sink-read {self.control.key}",
                         daemon=True).start()
        threading.Thread(target=self._work, name=f"sink {self.control.key}",
                         daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    # -- reader thread
    def _read(self) -> None:
        try:
            left = self.inlet.receive(self._enqueue, self._stopped)
        finally:
            self.released.set()
        # The socket is closed now, so waiting for room in the queue delays nothing.
        for frame in self._overflow + left:
            self._frames.put(frame)
        self._frames.put(None)  # the worker collects everything before it, then closes
        self.received += len(self._overflow) + len(left)

    def _enqueue(self, frame: bytes) -> None:
        self.received += 1
        while not self._stopped.is_set():
            try:
                self._frames.put(frame, timeout=channels.POLL_MS / 1000)
                return
            except queue.Full:
                continue
        # Stopped while a slow collect keeps the queue full: the frame reached the
        # plugin, so keep it for after the socket is closed.
        self.received -= 1
        self._overflow.append(frame)

    # -- worker thread
    def _work(self) -> None:
        if run_guarded(self.logger, "open", self.sink.open, self.ctx):
            while True:
                frame = self._frames.get()
                if frame is None:
                    break
                self._collect(frame)
        else:
            self._discard_until_end()
        run_guarded(self.logger, "close", self.sink.close, self.ctx)
        self.acks.close()
        self.logger.info("closed after collecting %d of the %d frames received",
                         self.collected, self.received)
        self.finished.set()

    def _discard_until_end(self) -> None:
        while self._frames.get() is not None:
            if self.require_ack:
                self._send_ack(protocol.encode_ack("sink failed to open; see the plugin log"))

    def _collect(self, frame: bytes) -> None:
        self.collected += 1
        self._acked = False
        try:
            self.sink.collect(self.ctx, frame)
            error = None
        except Exception as exc:  # noqa: BLE001 - reported as an ack error and logged
            self.logger.exception("collect failed")
            error = protocol.describe_exception(exc)
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
        try:
            self.acks.send(frame)
        except channels.ChannelStopped:
            pass  # the rule stopped; nobody waits for this ack any more
        except Exception as exc:  # noqa: BLE001 - a lost ack is logged, never fatal
            self.logger.warning("could not send an ack to eKuiper: %s",
                                protocol.describe_exception(exc))


class FunctionRunner(Runner):
    """The one instance of a function name, serving every rule over its own REQ socket."""

    def __init__(self, control: protocol.Control, function: Function, plugin: str,
                 dial_deadline_s: float = channels.DIAL_DEADLINE_S) -> None:
        super().__init__(control)
        self.function = function
        self.plugin = plugin
        self.logger = instance_logger(plugin, protocol.Meta(), control.symbol_name)
        self._contexts: dict[tuple[protocol.Meta, int], SymbolContext] = {}
        self._stopped = threading.Event()
        self._is_aggregate: Optional[bool] = None
        self.channel = channels.InvertedReplier(protocol.function_url(control.symbol_name),
                                                dial_deadline_s=dial_deadline_s)

    def start(self) -> None:
        threading.Thread(target=self._serve, name=f"function {self.control.symbol_name}",
                         daemon=True).start()

    def stop(self) -> None:
        # Only the process's shutdown stops a function. There is nothing of the user's
        # to close, so it counts as finished at once; the serving thread notices the flag
        # at its next keepalive and dies with the process.
        self._stopped.set()
        self.finished.set()

    def _serve(self) -> None:
        try:
            self.channel.serve(self.handle, self._stopped)
        except Exception:  # noqa: BLE001 - the channel broke; the log says why
            self.logger.exception("function channel failed")
        finally:
            self.released.set()
            self.finished.set()

    def handle(self, data: bytes) -> bytes:
        """Answer one host request; never raises."""
        try:
            request = protocol.decode_func_request(data)
        except protocol.ProtocolError as exc:
            self.logger.warning("bad request: %s", exc)
            return protocol.func_reply(False, str(exc))
        try:
            if request.func == protocol.EXEC:
                args, where = protocol.split_exec_arg(request.arg)
                return protocol.func_reply(True, self.function.exec(args, self._context(where)))
            if request.func == protocol.VALIDATE:
                problem = self.function.validate(request.arg)
                if problem:
                    return protocol.func_reply(False, str(problem))
                return protocol.func_reply(True, "")
            return protocol.func_reply(True, self._aggregate())
        except protocol.ProtocolError as exc:
            self.logger.warning("bad %s request: %s", request.func, exc)
            return protocol.func_reply(False, str(exc))
        except Exception as exc:  # noqa: BLE001 - the rule gets the error, the log the traceback
            self.logger.exception("%s failed", request.func)
            return protocol.func_reply(False, protocol.describe_exception(exc))

    def _aggregate(self) -> bool:
        if self._is_aggregate is None:
            self._is_aggregate = bool(self.function.is_aggregate())
        return self._is_aggregate

    def _context(self, where: protocol.FuncMeta) -> SymbolContext:
        key = (where.meta, where.func_id)
        ctx = self._contexts.get(key)
        if ctx is None:
            logger = instance_logger(self.plugin, where.meta, self.control.symbol_name,
                                     where.func_id)
            ctx = self._contexts[key] = SymbolContext(where.meta, logger, func_id=where.func_id,
                                                      plugin=self.plugin,
                                                      symbol=self.control.symbol_name)
        return ctx
