"""A running source instance (docs/protocol.md, "Source")."""

from __future__ import annotations

import threading

from ..api import Source
from ..errors import ChannelStopped, SendTimeout, SourceFailed, SymbolStopped
from . import channels, lingering, memory, protocol
from .context import SymbolContext, instance_logger
from .hooks import NO_SUPERVISION, SupervisionHooks
from .runner import Runner, run_guarded
from .watchdog import WATCHDOG


class SourceRunner(Runner):
    """One source instance: ``open`` runs in its own thread and emits over a PUSH socket."""

    def __init__(self, control: protocol.Control, source: Source, plugin: str,
                 send_timeout_ms: int, hooks: SupervisionHooks = NO_SUPERVISION,
                 call_limit: float = 0.0) -> None:
        super().__init__(control, hooks)
        lingering.LINGERING.check_room(control.symbol_name)
        self.call_limit = call_limit
        self.source = source
        self.logger = instance_logger(plugin, control.meta, control.symbol_name)
        self.outlet = channels.Outlet(protocol.source_url(control.meta), send_timeout_ms,
                                      "source", channels.SOURCE_SEND_BUFFER,
                                      label="source's data channel")
        self.ctx = SymbolContext(control.meta, self.logger, emitter=self._emit, plugin=plugin,
                                 symbol=control.symbol_name, config=control.config)
        self._close_once = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None

    def _emit(self, frame: bytes) -> None:
        try:
            self.outlet.send(frame)
        except ChannelStopped:
            raise SymbolStopped(f"{self.control.label()} was stopped") from None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"source {self.control.key}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.source.open(self.ctx)
        except ChannelStopped:
            pass  # emit after stop: the expected way for an open loop to end
        except SourceFailed as exc:    # a decorated source, already logged
            self._report(str(exc))
        except Exception as exc:  # noqa: BLE001 - logged; the instance stays until stopped
            self.hooks.user_code_failed(exc, f"open of {self.control.label()}")
            self.logger.exception("open failed")
            self._report(f"open failed: {protocol.exception_line(exc)}")

    def _report(self, text: str) -> None:
        """The failure, to the rule's metrics (see protocol.encode_source_error)."""
        try:
            self.outlet.send(protocol.encode_source_error(self.control.symbol_name, text))
        except (ChannelStopped, SendTimeout, OSError) as exc:
            self.logger.debug("could not report the failure to eKuiper: %s", exc)

    def stop(self) -> None:
        # Close the socket now (so nothing more reaches the host and the URL is free),
        # then let close() run away from the control thread.
        self.outlet.close()
        self.released.set()
        if self._thread is not None:
            lingering.LINGERING.track(self._thread, self.control.symbol_name)
        threading.Thread(target=self._close, name=f"close {self.control.key}",
                         daemon=True).start()

    def _close(self) -> None:
        with self._close_once:
            if not self._closed:
                self._closed = True
                watch = WATCHDOG.slot(self.control.label(), self.call_limit)
                run_guarded(self.logger, "close", watch.call, self.source.close, self.ctx,
                            hooks=self.hooks)
                watch.close()
        self.finished.set()
        # An open() that ignores close() keeps its thread: say so once, and count it.
        thread = self._thread
        if thread is not None:
            thread.join(lingering.linger_s(self.call_limit))
            if thread.is_alive():
                lingering.LINGERING.report(thread, self.control.symbol_name,
                                           self.control.label(),
                                           lingering.linger_s(self.call_limit))
            else:
                lingering.LINGERING.returned(thread, self.control.symbol_name)
        memory.TRIM.after_stop()
