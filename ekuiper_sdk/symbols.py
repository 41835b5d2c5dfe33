"""Running instances of sources, sinks and functions.

A runner is created and started by the control thread, which must answer the host
quickly: ``start`` only does socket work and the user's ``configure`` (bounded by
``USER_CALL_TIMEOUT_S``); ``open``, ``collect`` and ``close`` run in the runner's own
threads. ``stop`` only signals; ``released`` tells when the instance's socket URL is
free again, and ``finished`` when ``close`` has returned.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, List, Optional, TypeVar

from . import channels, protocol
from .api import Function, Sink, Source
from .context import SymbolContext, instance_logger

T = TypeVar("T")

#: How long the control thread waits for a user's factory or ``configure``.
USER_CALL_TIMEOUT_S = 5.0
#: Call sites whose parsed context a function keeps (rules x calls in them).
MAX_CALL_SITES = 4096

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
    """One sink instance: the thread that calls ``collect`` also reads the socket.

    Reading and collecting in one thread costs no hand-over between threads per frame
    (a third of a sink's per-frame CPU time when they were two; docs/performance.md),
    and a slow ``collect`` slows the host down, through nng's buffers, instead of
    filling memory. The socket has a lock, held while it is read: a stop that finds the
    worker inside a long ``collect`` (or ``open``) takes the socket over in a helper
    thread, reads what already reached it and closes it, so the URL is free at once and
    those frames are collected when ``collect`` returns. The socket is never used by two
    threads at once, and whoever holds the lock closes it.
    """

    def __init__(self, control: protocol.Control, sink: Sink, plugin: str,
                 send_timeout_ms: int) -> None:
        super().__init__(control)
        self.sink = sink
        self.logger = instance_logger(plugin, control.meta, control.symbol_name)
        self.require_ack = control.config.get("requireAck") is True
        self._stopped = threading.Event()
        self._left: List[bytes] = []  # taken from the socket by a stop, not yet collected
        self._acked = False
        self.received = 0  # frames taken from the socket
        self.collected = 0  # frames passed to collect
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
        threading.Thread(target=self._work, name=f"sink {self.control.key}",
                         daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()
        threading.Thread(target=self._release, name=f"release {self.control.key}",
                         daemon=True).start()

    def _release(self) -> None:
        # Waits at most one poll interval when the worker is reading; at once when it
        # is in user code.
        with self.inlet.lock:
            if not self.inlet.closed:
                self._left = self.inlet.finish()
        self.released.set()

    def _work(self) -> None:
        opened = run_guarded(self.logger, "open", self.sink.open, self.ctx)
        handle = self._collect if opened else self._refuse
        inlet = self.inlet
        while True:
            with inlet.lock:
                if inlet.closed:  # a stop took the socket over
                    break
                last = self._stopped.is_set()
                frames = inlet.finish() if last else inlet.receive()
            if last:
                self.released.set()
            self.received += len(frames)
            for frame in frames:
                handle(frame)
            if last:
                break
        self.received += len(self._left)
        for frame in self._left:
            handle(frame)
        run_guarded(self.logger, "close", self.sink.close, self.ctx)
        self.acks.close()
        self.logger.info("closed after collecting %d of the %d frames received",
                         self.collected, self.received)
        self.finished.set()

    def _refuse(self, frame: bytes) -> None:
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
        self._contexts: Dict[tuple[protocol.Meta, int], SymbolContext] = {}
        # The context of a call site by the text the host sends for it: a rule sends the
        # same text with every call, and parsing it again cost more than the rest of the
        # call's Python work (see docs/performance.md).
        self._by_wire: Dict[str, SymbolContext] = {}
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
        """Answer one host request; never raises, so the serving thread never dies."""
        try:
            return self._answer(data)
        except Exception as exc:  # noqa: BLE001 - whatever the cause, the host gets a reply
            self.logger.exception("answering a request failed")
            return protocol.func_reply(False, protocol.describe_exception(exc))

    def _answer(self, data: bytes) -> bytes:
        answer = self._exec_known_site(data)
        if answer is not None:
            return answer
        try:
            request = protocol.decode_func_request(data)
        except protocol.ProtocolError as exc:
            self.logger.warning("bad request: %s", exc)
            return protocol.func_reply(False, str(exc))
        try:
            if request.func == protocol.EXEC:
                return self._exec_new_site(request.arg)
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

    def _exec_known_site(self, data: bytes) -> Optional[bytes]:
        """Answer an ``Exec`` from a call site seen before, or None for anything else.

        Nearly every request is one; taking it without the general decoding (the same
        checks, fewer steps, no request object) cut a call's CPU time in the plugin by
        about a tenth, more than the microbenchmark's 1.5 us: between two calls the
        caches go cold, so every step counts (docs/performance.md).
        """
        try:
            obj = protocol.loads(data)
        except (ValueError, RecursionError):
            return None  # the general path says what is wrong with it
        if type(obj) is not dict or obj.get("func") != protocol.EXEC:
            return None
        arg = obj.get("arg")
        if type(arg) is not list or not arg:
            return None
        wire = arg[-1]
        ctx = self._by_wire.get(wire) if type(wire) is str else None
        if ctx is None:
            return None
        return self._call(arg[:-1], ctx)

    def _exec_new_site(self, arg: List[Any]) -> bytes:
        """An ``Exec`` whose call site is not cached yet: check it, cache it, call."""
        args, where = protocol.split_exec_arg(arg)  # raises for a bad call site
        ctx = self._context(where)
        if len(self._by_wire) < MAX_CALL_SITES:
            self._by_wire[arg[-1]] = ctx
        return self._call(args, ctx)

    def _call(self, args: List[Any], ctx: SymbolContext) -> bytes:
        try:
            return protocol.func_reply(True, self.function.exec(args, ctx))
        except Exception as exc:  # noqa: BLE001 - the rule gets the error, the log the traceback
            self.logger.exception("Exec failed")
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
