"""The ``Context`` handed to running symbols, and the per-instance loggers."""

from __future__ import annotations

import logging
import threading
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

from ..api import Context
from . import protocol

if TYPE_CHECKING:
    from ..state import State

SDK_LOGGER = "ekuiper_sdk"


def instance_logger(plugin: str, meta: protocol.Meta, symbol: str,
                    func_id: int | None = None) -> logging.Logger:
    """A logger whose lines name the plugin, symbol, rule, op and instance.

    It is a plain ``logging.Logger`` parented to the SDK's logger but not registered in
    the logging manager, so one per rule instance does not accumulate for the life of
    the process.
    """
    name = f"{plugin}.{symbol}"
    if meta.rule_id:
        name += f" rule={meta.rule_id} op={meta.op_id} instance={meta.instance_id}"
    if func_id is not None:
        name += f" funcId={func_id}"
    logger = logging.Logger(name)
    logger.parent = logging.getLogger(SDK_LOGGER)
    return logger


class SymbolContext(Context):
    """The context of one running source, sink or function call site."""

    def __init__(self, meta: protocol.Meta, logger: logging.Logger,
                 emitter: Callable[[bytes], None] | None = None,
                 acker: Callable[[bytes], None] | None = None,
                 func_id: int | None = None, plugin: str = "", symbol: str = "",
                 config: Mapping[str, Any] | None = None) -> None:
        self._meta = meta
        self._logger = logger
        self._emitter = emitter
        self._acker = acker
        self._func_id = func_id
        self._plugin = plugin
        self._symbol = symbol
        self._config: Mapping[str, Any] = types.MappingProxyType(dict(config or {}))
        self._state: State | None = None
        self._state_lock = threading.Lock()

    @property
    def func_id(self) -> int:
        return self._func_id or 0

    @property
    def config(self) -> Mapping[str, Any]:
        return self._config

    @property
    def state(self) -> State:
        # Created on first use: most symbols never touch it, and reading the file
        # belongs to the symbol's thread, not to the control thread that made the context.
        with self._state_lock:
            if self._state is None:
                from ..state import State, StateKey

                meta = self._meta
                self._state = State.for_key(StateKey(
                    self._plugin, self._symbol, meta.rule_id, meta.op_id, meta.instance_id,
                    self._func_id))
            return self._state

    def get_rule_id(self) -> str:
        return self._meta.rule_id

    def get_op_id(self) -> str:
        return self._meta.op_id

    def get_instance_id(self) -> int:
        return self._meta.instance_id

    def get_logger(self) -> logging.Logger:
        return self._logger

    def emit(self, message: dict[str, Any], meta: dict[str, Any] | None = None) -> None:
        """Send one tuple to the rule.

        Raises ``EncodeError`` when the tuple has no JSON form eKuiper can read,
        ``SymbolStopped`` once the rule stopped (so an ``open`` loop ends by itself), and
        ``SendTimeout`` when eKuiper did not read for ``sendTimeout`` milliseconds.
        """
        if self._emitter is None:
            raise RuntimeError("emit is only available to sources")
        self._emitter(protocol.encode_tuple(message, meta))

    def emit_error(self, error: str) -> None:
        """Report an error to the rule, where eKuiper shows it, and to the log.

        eKuiper v2 has no error frame (a ``{"error": ...}`` frame becomes an empty tuple),
        so the error goes as a frame it cannot decode: the source's ``exceptions_total``
        counts it and its ``last_exception`` shows the text
        (:func:`~ekuiper_sdk.runtime.protocol.encode_source_error`).
        """
        if self._emitter is None:
            raise RuntimeError("emit_error is only available to sources")
        self._logger.error("source error: %s", error)
        self._emitter(protocol.encode_source_error(self._symbol, f"error: {error}"))

    def ack_ok(self) -> None:
        self._ack(None)

    def ack_error(self, error: str) -> None:
        self._ack(str(error) or "error")

    def _ack(self, error: str | None) -> None:
        if self._acker is None:
            raise RuntimeError("acks are only available to sinks")
        self._acker(protocol.encode_ack(error))

    def __repr__(self) -> str:
        return (f"Context(rule_id={self.rule_id!r}, op_id={self.op_id!r}, "
                f"instance_id={self.instance_id})")
