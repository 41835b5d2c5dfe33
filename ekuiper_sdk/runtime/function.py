"""The one running instance of a function name (docs/protocol.md, "Function")."""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from typing import Any

from ..api import Function
from ..errors import ProtocolError
from . import channels, codec, protocol
from .context import SymbolContext, instance_logger
from .hooks import NO_SUPERVISION, Handler, SupervisionHooks
from .log_limit import LogLimiter
from .runner import Runner
from .watchdog import WATCHDOG, Stuck, Superseded

#: Call sites whose parsed context a function keeps (rules x calls in them). Rules come
#: and go with fresh ids and eKuiper never says a call site is gone, so the oldest is
#: forgotten first: memory stays bounded and new sites still take the fast path. A
#: forgotten site that calls again gets a new context (a context holds no user state).
MAX_CALL_SITES = 4096


class FunctionRunner(Runner):
    """The one instance of a function name, serving every rule over its own REQ socket."""

    def __init__(self, control: protocol.Control, function: Function, plugin: str,
                 dial_deadline_s: float = channels.DIAL_DEADLINE_S,
                 hooks: SupervisionHooks = NO_SUPERVISION, call_limit: float = 0.0) -> None:
        super().__init__(control, hooks)
        self.function = function
        self.plugin = plugin
        self.logger = instance_logger(plugin, protocol.Meta(), control.symbol_name)
        self._contexts: OrderedDict[tuple[protocol.Meta, int], SymbolContext] = OrderedDict()
        # The context of a call site by the text the host sends for it: a rule sends the
        # same text with every call, and parsing it again cost more than the rest of the
        # call's Python work (see docs/performance.md). A plain dict, whose get is the
        # fastest (an OrderedDict's costs 10 ns more per call); the order to forget in is
        # kept beside it, touched only by a new site.
        self._by_wire: dict[str, SymbolContext] = {}
        self._wire_order: deque[str] = deque()
        self._failures = LogLimiter(self.logger, max_keys=16)
        self._stopped = threading.Event()
        self._is_aggregate: bool | None = None
        self.channel = channels.InvertedReplier(protocol.function_url(control.symbol_name),
                                                dial_deadline_s=dial_deadline_s,
                                                what="function channel")
        # An Exec past the limit: a new thread takes the calls over (see _take_over).
        self._watch = WATCHDOG.slot(control.label(), call_limit, self._take_over,
                                    supersede=True)

    def start(self) -> None:
        threading.Thread(target=self._serve, args=(self.channel, self.handle),
                         name=f"function {self.control.symbol_name}", daemon=True).start()

    def stop(self) -> None:
        # Only the process's shutdown stops a function. There is nothing of the user's
        # to close, so it counts as finished at once; the serving thread notices the flag
        # at its next keepalive and dies with the process.
        self._stopped.set()
        self.finished.set()

    def _serve(self, channel: channels.InvertedReplier, handler: Handler) -> None:
        superseded = False
        try:
            # Under a supervisor, calls are marked so that one that kills a worker is known.
            handle = self.hooks.guard_calls(self.control.symbol_name, handler)
            channel.serve(handle, self._stopped)
        except Superseded:
            superseded = True  # its socket is closed; the newer thread serves on its own
        except Exception:  # noqa: BLE001 - the channel broke; the log says why
            self.logger.exception("function channel failed")
        finally:
            if not superseded:
                self.released.set()
                self.finished.set()

    def _take_over(self, stuck: Stuck) -> None:
        """An Exec is stuck (the watchdog's thread): serve the next calls from a new thread.

        It dials the host's function socket on a socket of its own and answers every call
        with one line saying where the stuck one is, until that one returns; then it calls
        the function again, and the stuck thread ends without a word on its own socket,
        which it closes (no socket is ever used by two threads). eKuiper sends its next
        call to whichever socket asked last, so the new thread gets it.
        """
        threading.Thread(target=self._serve_instead, args=(stuck,),
                         name=f"function {self.control.symbol_name} (after a stuck call)",
                         daemon=True).start()

    def _serve_instead(self, stuck: Stuck) -> None:
        try:
            channel = channels.InvertedReplier(protocol.function_url(self.control.symbol_name),
                                               what="function channel")
        except ConnectionError as exc:
            self.logger.error("cannot serve calls beside the stuck one: %s", exc)
            return
        name, slot = self.control.symbol_name, self._watch

        def while_stuck(data: bytes) -> bytes:
            now = slot.stuck
            if now is None:
                return self.handle(data)
            return protocol.func_reply(False, now.line(name))

        self._serve(channel, while_stuck)

    def handle(self, data: bytes) -> bytes:
        """Answer one host request; never raises, so the serving thread never dies."""
        try:
            return self._answer(data)
        except Exception as exc:  # noqa: BLE001 - whatever the cause, the host gets a reply
            self.hooks.user_code_failed(exc, self.control.label())
            self.logger.exception("answering a request failed")
            return protocol.func_reply(False, protocol.exception_line(exc))

    def _answer(self, data: bytes) -> bytes:
        answer = self._exec_known_site(data)
        if answer is not None:
            return answer
        try:
            request = protocol.decode_func_request(data)
        except ProtocolError as exc:
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
        except ProtocolError as exc:
            self.logger.warning("bad %s request: %s", request.func, exc)
            return protocol.func_reply(False, str(exc))
        except Exception as exc:  # noqa: BLE001 - the rule gets the error, the log the traceback
            self.logger.exception("%s failed", request.func)
            return protocol.func_reply(False, protocol.exception_line(exc))

    def _exec_known_site(self, data: bytes) -> bytes | None:
        """Answer an ``Exec`` from a call site seen before, or None for anything else.

        Nearly every request is one; taking it without the general decoding (the same
        checks, fewer steps, no request object) cut a call's CPU time in the plugin by
        about a tenth, more than the microbenchmark's 1.5 us: between two calls the
        caches go cold, so every step counts (docs/performance.md).
        """
        try:
            obj = codec.loads(data)
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

    def _exec_new_site(self, arg: list[Any]) -> bytes:
        """An ``Exec`` whose call site is not cached yet: check it, cache it, call."""
        args, where = protocol.split_exec_arg(arg)  # raises for a bad call site
        ctx = self._context(where)
        wire = arg[-1]
        if wire not in self._by_wire:
            if len(self._wire_order) >= MAX_CALL_SITES:
                self._by_wire.pop(self._wire_order.popleft(), None)
            self._wire_order.append(wire)
        self._by_wire[wire] = ctx
        return self._call(args, ctx)

    def _call(self, args: list[Any], ctx: SymbolContext) -> bytes:
        try:
            return protocol.func_reply(True, self._watch.call(self.function.exec, args, ctx))
        except Exception as exc:  # noqa: BLE001 - the rule gets the error, the log the traceback
            self.hooks.user_code_failed(exc, f"Exec of {self.control.label()}")
            error = protocol.exception_line(exc)
            # A function that fails on every record would log a traceback per call.
            self._failures.error(type(exc).__qualname__, "Exec failed: %s", error, exc_info=True)
            return protocol.func_reply(False, error)

    def _aggregate(self) -> bool:
        if self._is_aggregate is None:
            self._is_aggregate = bool(self.function.is_aggregate())
        return self._is_aggregate

    def _context(self, where: protocol.FuncMeta) -> SymbolContext:
        key = (where.meta, where.func_id)
        ctx = self._contexts.get(key)
        if ctx is None:
            if len(self._contexts) >= MAX_CALL_SITES:
                self._contexts.popitem(last=False)
            logger = instance_logger(self.plugin, where.meta, self.control.symbol_name,
                                     where.func_id)
            ctx = self._contexts[key] = SymbolContext(where.meta, logger, func_id=where.func_id,
                                                      plugin=self.plugin,
                                                      symbol=self.control.symbol_name)
        return ctx
