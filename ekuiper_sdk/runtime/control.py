"""The plugin's symbols served over a control channel: the registry of running
instances, their start, stop and shutdown.

The process around it (logging, signals, the control thread, the parent watch, the exit)
is :mod:`.process`'s; this module answers the commands. Each symbol instance has its own
threads (see ``symbols``). Answering a command waits on socket work and on the user's
``configure`` at most (bounded), never on ``open``, ``collect`` or ``close``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable, NoReturn, Protocol

from ..api import Function, Sink, Source
from ..errors import ConfigError, ProtocolError, UserCodeError
from . import channels, lingering, protocol
from .function import FunctionRunner
from .hooks import NO_SUPERVISION, SupervisionHooks
from .process import (
    EKUIPER,
    CommandChannel,
    Identity,
    ProcessLife,
    answer_command,
    connect_to_ekuiper,
    refusal,
)
from .runner import Runner, call_user
from .sink import SinkRunner
from .source import SourceRunner
from .watchdog import WATCHDOG, resolve_limit


class SymbolTable(Protocol):
    """Where the control loop finds a plugin's symbols (a ``PluginConfig``)."""

    name: str
    #: Serve the symbols from a worker process that a supervisor restarts (``roles``).
    supervise: bool

    @property
    def functions(self) -> Mapping[str, Callable[[], Function]]: ...

    def source(self, name: str) -> Callable[[], Source]: ...

    def sink(self, name: str) -> Callable[[], Sink]: ...

    def function(self, name: str) -> Callable[[], Function]: ...

    def get(self, plugin_type: str, symbol_name: str) -> Callable[[], object]: ...


log = logging.getLogger("ekuiper_sdk")

#: How long a start waits for a replaced instance of the same key to free its socket.
REPLACE_WAIT_S = 2.0
#: How long shutdown waits for every instance's ``close`` before the process exits.
SHUTDOWN_WAIT_S = 1.5


def typed_config(instance: object, conf: dict[str, Any]) -> Any:
    """``conf`` converted to the instance's declared configuration type (the one rule is
    :func:`ekuiper_sdk.typed_config.config_type_of`), or the dict itself."""
    # Imported here, as the runtime's rule is (docs/architecture.md); typed_config itself
    # imports only errors and the standard library.
    from ..typed_config import configured

    return configured(instance, conf)


class PluginRuntime:
    """Serves one plugin's symbols to the host for the life of the process.

    ``connect`` opens the channel commands come from; by default eKuiper's control channel.
    A supervised worker passes its supervisor's private channel instead (with its
    ``role``), ``rejoin=False`` when the supervisor replays the function starts itself,
    and the ``hooks`` through which supervision watches the running instances.
    """

    def __init__(self, config: SymbolTable, argv: list[str],
                 connect: Callable[[], CommandChannel] | None = None,
                 rejoin: bool = True, hooks: SupervisionHooks = NO_SUPERVISION,
                 role: Identity = EKUIPER) -> None:
        self.config = config
        self.life = ProcessLife(config.name, argv)
        self.options = self.life.options
        self._connect = connect or (lambda: connect_to_ekuiper(config.name))
        self._role = role
        self._rejoin = rejoin
        self.hooks = hooks
        # A stuck call under a supervisor ends the worker; as one process the runner heals.
        WATCHDOG.on_stuck = (lambda _stuck, what: hooks.call_hung(what)) \
            if hooks.heals_hung_calls else None
        # The status file is written when something happens, never before (it costs the
        # state module's import): a healthy plugin in one process has none.
        self._status: Any = None
        WATCHDOG.on_change = lingering.LINGERING.on_change = self.write_status
        self._runners: dict[str, Runner] = {}
        # Stopped instances still draining or closing: shutdown waits for them too.
        self._stopping: list[Runner] = []
        self._lock = threading.Lock()
        self._function_lock = threading.Lock()

    # -- process lifecycle (process.Service)

    def serve_forever(self) -> NoReturn:
        """Connect to the host and serve until shut down; exits the process."""
        self.life.serve(self, self._role, self._connect)

    def shutdown(self, reason: str) -> None:
        """Ask the process to close every symbol and exit."""
        self.life.shutdown.ask(reason)

    def begin(self) -> None:
        if self._rejoin:
            threading.Thread(target=self._rejoin_functions, name="rejoin", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            running = list(self._runners.values())
            self._runners.clear()
            runners = running + self._stopping
        for runner in running:
            runner.stop()
        give_up = time.monotonic() + SHUTDOWN_WAIT_S
        for runner in runners:
            if not runner.finished.wait(max(0.0, give_up - time.monotonic())):
                log.warning("%s did not finish closing in time", runner.control.label())

    # -- commands

    def handle_command(self, data: bytes) -> bytes:
        """Answer one control command from the host; never raises, never blocks on user code."""
        return answer_command(data, self._answer)

    def _answer(self, command: protocol.Command) -> bytes:
        control = command.control
        try:
            if command.cmd == protocol.CMD_START:
                self._start(control)
            else:
                self._stop(control)
            return protocol.OK
        except (LookupError, UserCodeError, ProtocolError, ConnectionError, ConfigError) as exc:
            problem, trace = str(exc), exc.__cause__
        except Exception as exc:  # noqa: BLE001 - the host gets one line, the log the traceback
            problem, trace = protocol.exception_line(exc), exc
        # The traceback of the user's code (if any) goes to the log, never to the host.
        return refusal(command.cmd, control, problem, trace)

    def _start(self, control: protocol.Control) -> None:
        if control.plugin_type == protocol.FUNC:
            self._start_function(control)
            return
        name, config = control.symbol_name, dict(control.config)
        runner: Runner
        if control.plugin_type == protocol.SOURCE:
            source_factory = self.config.source(name)
            self._replace_running(control.instance_key)
            source = call_user("creating the instance", source_factory, hooks=self.hooks)
            call_user("configure", source.configure, control.data_source,
                      typed_config(source, config), hooks=self.hooks)
            runner = SourceRunner(control, source, self.config.name,
                                  self.options.send_timeout_ms, self.hooks,
                                  self.call_limit(source))
        else:
            sink_factory = self.config.sink(name)
            self._replace_running(control.instance_key)
            sink = call_user("creating the instance", sink_factory, hooks=self.hooks)
            call_user("configure", sink.configure, typed_config(sink, config), hooks=self.hooks)
            runner = SinkRunner(control, sink, self.config.name, self.options.send_timeout_ms,
                                self.hooks, self.call_limit(sink))
        with self._lock:
            self._runners[control.instance_key] = runner
        runner.start()
        log.info("started %s", control.label())

    def _start_function(self, control: protocol.Control,
                        dial_deadline_s: float = channels.DIAL_DEADLINE_S) -> None:
        factory = self.config.function(control.symbol_name)
        key = control.instance_key
        # Held across check and create: the control thread and the rejoin at start-up
        # may start the same function at once.
        with self._function_lock:
            with self._lock:
                running = self._runners.get(key)
            # One instance per function name serves every rule; the host sends a start per
            # rule and replays them after a restart, so a second start is not an error.
            if running is not None and not running.released.is_set():
                return
            instance = call_user("creating the instance", factory, hooks=self.hooks)
            runner = FunctionRunner(control, instance, self.config.name, dial_deadline_s,
                                    self.hooks, self.call_limit(instance))
            with self._lock:
                self._runners[key] = runner
        runner.start()
        log.info("started %s", control.label())

    def call_limit(self, instance: object) -> float:
        """After how long a call into ``instance`` counts as stuck (``watchdog``)."""
        return resolve_limit(instance, getattr(self.config, "call_limit", None),
                             self.options.send_timeout_ms)

    def write_status(self) -> None:
        """Rewrite this process's part of the plugin's status file (``status_file``)."""
        # Imported here: only a plugin with something to report pays for them.
        from ..state import state_dir
        from ..status_file import StatusFile, status_path

        worker = self._role.title == "worker"
        if self._status is None:
            self._status = StatusFile(status_path(state_dir(), self.config.name,
                                                  "worker" if worker else ""))
        fields: dict[str, Any] = {
            "pid": os.getpid(), "hung_calls": WATCHDOG.hung_total,
            "stuck_now": WATCHDOG.stuck_now(),
            "lingering_sources": lingering.LINGERING.count()}
        if not worker:
            fields["mode"] = "one process"
        self._status.update(**fields)

    def _rejoin_functions(self) -> None:
        """Serve every declared function whose host socket is already there.

        eKuiper keeps the start commands it replays after a plugin restart in a map keyed
        by rule, op and instance, which are empty for every function: only the function
        started last is replayed, and rules calling the others would time out for good.
        A function's socket exists only while eKuiper serves it, so a restarted plugin
        joins each one it finds; a socket file with nobody listening is skipped at once.
        """
        for name in sorted(self.config.functions):
            url = protocol.function_url(name)
            if not os.path.exists(protocol.url_path(url)):
                continue
            try:
                self._start_function(protocol.Control(name, protocol.FUNC), dial_deadline_s=0)
            except (ConnectionError, UserCodeError) as exc:
                log.debug("not rejoining function %r: %s", name, exc)

    def _retire(self, key: str) -> Runner | None:
        """Take an instance out of the registry and tell it to stop."""
        with self._lock:
            runner = self._runners.pop(key, None)
            if runner is None:
                return None
            self._stopping = [r for r in self._stopping if not r.finished.is_set()]
            self._stopping.append(runner)
        runner.stop()
        return runner

    def _replace_running(self, key: str) -> None:
        """Make way for a new instance of ``key``.

        A start for a key that runs already (a replay, a restart) replaces the old one,
        and an instance stopped a moment ago may still be draining its socket: the new one
        must not listen on the same path until the old socket is closed, since closing it
        removes the socket file.
        """
        if self._retire(key) is not None:
            log.info("replacing the running %s", key)
        with self._lock:
            previous = [r for r in self._stopping if r.control.instance_key == key]
        for old in previous:
            if not old.released.wait(REPLACE_WAIT_S):
                raise UserCodeError(f"the previous {old.control.label()} still holds its "
                                    "socket")

    def _stop(self, control: protocol.Control) -> None:
        self.config.get(control.plugin_type, control.symbol_name)  # an unknown symbol is an error
        if control.plugin_type == protocol.FUNC:
            log.info("ignoring stop of %s: functions serve every rule until the plugin exits",
                     control.label())
            return
        if control.plugin_type == protocol.SINK:
            free_ack_path(control.meta)
        if self._retire(control.instance_key) is None:
            # Stopping twice, or after a failed start, leaves the same state: not an error.
            log.warning("stop of %s, which is not running", control.label())
            return
        log.info("stopped %s", control.label())


def free_ack_path(meta: protocol.Meta) -> None:
    """Remove a stopped sink's ack socket file, which a 1.x host never closes.

    eKuiper 1.x keeps listening on it after the rule stops (fixed in 2.0), so the rule's
    next start failed with ``address in use`` until eKuiper restarted. Without the file,
    the host's next listen makes a new one; the plugin's dialer is unaffected. A 2.x host
    has closed (and removed) it before it sends ``stop``, and a restart of the rule waits
    for this answer, so no newer socket can be removed.
    """
    try:
        os.unlink(protocol.url_path(protocol.sink_ack_url(meta)))
    except (OSError, ProtocolError):
        pass
