"""The plugin process: control loop, registry of running symbols, lifecycle, shutdown.

Threads: the main thread only waits for a reason to shut down (a signal, the host's
death, a broken control channel); the control thread answers the host's commands; each
symbol instance has its own threads (see ``symbols``). Answering a command waits on
socket work and on the user's ``configure`` at most (bounded), never on ``open``,
``collect`` or ``close``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import pynng

from ..api import Function, Sink, Source
from ..errors import ConfigError, ProtocolError, UserCodeError
from . import channels, protocol
from .function import FunctionRunner
from .parent import watch_parent
from .runner import Runner, call_user
from .sink import SinkRunner
from .source import SourceRunner


class SymbolTable(Protocol):
    """Where the control loop finds a plugin's symbols (a ``PluginConfig``)."""

    name: str
    #: Serve the symbols from a worker process that a supervisor restarts (supervisor.py).
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
#: The main thread only waits; a signal or another thread wakes it (a long timeout
#: is there only so that the wait is never unbounded).
SHUTDOWN_CHECK_S = 3600.0

LOG_LEVEL_ENV = "EKUIPER_SDK_LOG_LEVEL"
DEFAULT_SEND_TIMEOUT_MS = 1000


@dataclass(frozen=True)
class HostOptions:
    """What the host passes in ``argv[1]``."""

    send_timeout_ms: int = DEFAULT_SEND_TIMEOUT_MS


def parse_host_args(argv: list[str]) -> HostOptions:
    """Read the host's JSON argument; tolerate it missing, extra keys and bad values.

    >>> parse_host_args(["pysam.py", '{"sendTimeout": 500, "future": 1}'])
    HostOptions(send_timeout_ms=500)
    """
    if len(argv) < 2:
        return HostOptions()
    try:
        obj = json.loads(argv[1])
    except ValueError:
        log.warning("ignoring an argument that is not JSON: %.80r", argv[1])
        return HostOptions()
    timeout = obj.get("sendTimeout") if isinstance(obj, dict) else None
    if isinstance(timeout, int) and not isinstance(timeout, bool) and timeout > 0:
        return HostOptions(send_timeout_ms=timeout)
    if timeout is not None:
        log.warning("ignoring sendTimeout %r: not a positive number of milliseconds", timeout)
    return HostOptions()


def typed_config(instance: object, conf: dict[str, Any]) -> Any:
    """``conf`` converted to the instance's declared configuration type (the one rule is
    :func:`ekuiper_sdk.typed_config.config_type_of`), or the dict itself."""
    # Imported here: a plugin that declares no configuration type could do without it,
    # but the rule lives in one place (typed_config imports only errors and the stdlib).
    from ..typed_config import configured

    return configured(instance, conf)


def configure_logging() -> None:
    """Send log lines to stderr, which eKuiper copies into its own log.

    Like a program's ``main``, the plugin sets up the root logger unless the plugin's
    code already did, so plain ``logging.info`` calls in plugin code show up too.
    stdout and stderr become line-buffered: eKuiper starts a conda plugin without
    ``python -u``, and a pipe is block-buffered by default, so a ``print`` or a log line
    could sit in a buffer until the plugin exits.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(line_buffering=True)
            except (ValueError, OSError):  # a replaced or closed stream: leave it
                pass
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(os.environ.get(LOG_LEVEL_ENV, "INFO").upper())


def connect_to_ekuiper(plugin: str) -> channels.InvertedReplier:
    """Dial eKuiper's control channel for ``plugin``; exits the process when none listens."""
    url = protocol.control_url(plugin)
    try:
        return channels.InvertedReplier(url)
    except ConnectionError:
        log.error("no eKuiper is listening at %s: a portable plugin is started by eKuiper "
                  "(or by ekuiper_sdk.testing), not by hand", url)
        logging.shutdown()
        sys.stderr.flush()
        os._exit(1)


class CommandChannel(Protocol):
    """Where commands come from: eKuiper's control channel, or a supervisor's (``worker``)."""

    def on_disconnect(self, callback: Callable[[], None]) -> None: ...

    def serve(self, handle: Callable[[bytes], bytes], stopped: threading.Event) -> None: ...


class ShutdownRequest(threading.Event):
    """Set once the process should close everything and exit; ``reason`` says why.

    >>> request = ShutdownRequest(); request.ask("signal SIGTERM"); request.ask("later")
    >>> request.is_set(), request.reason
    (True, 'signal SIGTERM')
    """

    def __init__(self) -> None:
        super().__init__()
        self.reason = ""

    def ask(self, reason: str) -> None:
        """Ask for the shutdown; the first reason given is the one kept."""
        if not self.is_set():
            self.reason = reason
            self.set()


def shut_down_on_signals(shutdown: Callable[[str], None]) -> None:
    """SIGTERM and SIGINT call ``shutdown`` with the signal's name.

    Python installs handlers from the main thread only; elsewhere (a plugin started from
    a thread of its own) the signals keep their default action.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def on_signal(signum: int, _frame: object) -> None:
        shutdown(f"signal {signal.Signals(signum).name}")

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)


class PluginRuntime:
    """Serves one plugin's symbols to the host for the life of the process.

    ``connect`` opens the channel commands come from; by default eKuiper's control channel.
    A supervised worker passes its supervisor's private channel instead, and ``rejoin=False``
    when the supervisor replays the function starts itself.
    """

    def __init__(self, config: SymbolTable, argv: list[str],
                 connect: Callable[[], CommandChannel] | None = None,
                 rejoin: bool = True) -> None:
        self.config = config
        self.options = parse_host_args(argv)
        self._connect = connect
        self._rejoin = rejoin
        self._runners: dict[str, Runner] = {}
        # Stopped instances still draining or closing: shutdown waits for them too.
        self._stopping: list[Runner] = []
        self._lock = threading.Lock()
        self._function_lock = threading.Lock()
        self._shutdown = ShutdownRequest()

    # -- process lifecycle

    def serve_forever(self) -> None:
        """Connect to the host and serve until shut down; exits the process."""
        configure_logging()
        role = "worker" if self._connect is not None else "plugin"
        log.info("%s %s starting (pid %d, sendTimeout %d ms)", role, self.config.name,
                 os.getpid(), self.options.send_timeout_ms)
        shut_down_on_signals(self.shutdown)
        control: CommandChannel
        if self._connect is not None:
            try:
                control = self._connect()
            except ConnectionError as exc:
                log.error("worker %s: its supervisor is gone: %s", self.config.name, exc)
                self._exit(1)
            control.on_disconnect(lambda: self.shutdown("the supervisor closed its channel"))
        else:
            control = connect_to_ekuiper(self.config.name)
            control.on_disconnect(lambda: self.shutdown("eKuiper closed the control channel"))
        threading.Thread(target=self._serve_control, args=(control,), name="control",
                         daemon=True).start()
        if self._rejoin:
            threading.Thread(target=self._rejoin_functions, name="rejoin", daemon=True).start()
        # The host died (even by SIGKILL): leave rather than linger as an orphan that a
        # restarted host's sockets could be shared with.
        host = "the supervisor" if self._connect else "eKuiper"
        watch_parent(lambda pid: self.shutdown(f"{host} (pid {pid}) is gone"))
        while not self._shutdown.wait(SHUTDOWN_CHECK_S):
            pass
        self._close_all()
        log.info("plugin %s stopped: %s", self.config.name, self._shutdown.reason)
        self._exit(0)

    def shutdown(self, reason: str) -> None:
        """Ask the process to close every symbol and exit."""
        self._shutdown.ask(reason)

    def _serve_control(self, control: CommandChannel) -> None:
        try:
            control.serve(self.handle_command, self._shutdown)
        except pynng.NNGException as exc:
            self.shutdown(f"control channel failed: {exc}")
        except Exception:  # noqa: BLE001 - reported, then the process exits cleanly
            log.exception("control channel failed")
            self.shutdown("control channel failed")
        else:
            self.shutdown("control channel closed")

    def _close_all(self) -> None:
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

    @staticmethod
    def _exit(code: int) -> None:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        # Daemon threads may sit inside nng calls; a plain exit would wait on interpreter
        # finalisation that can block on them.
        os._exit(code)

    # -- commands

    def handle_command(self, data: bytes) -> bytes:
        """Answer one control command from the host; never raises, never blocks on user code."""
        try:
            command = protocol.decode_command(data)
        except ProtocolError as exc:
            log.warning("refused a command: %s", exc)
            return protocol.control_answer(f"invalid command: {exc}")
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
        log.error("cannot %s %s: %s", command.cmd, control.label(), problem, exc_info=trace)
        return protocol.control_answer(f"cannot {command.cmd} {control.label()}: {problem}")

    def _start(self, control: protocol.Control) -> None:
        if control.plugin_type == protocol.FUNC:
            self._start_function(control)
            return
        name, config = control.symbol_name, dict(control.config)
        runner: Runner
        if control.plugin_type == protocol.SOURCE:
            source_factory = self.config.source(name)
            self._replace_running(control.key)
            source = call_user("creating the instance", source_factory)
            call_user("configure", source.configure, control.data_source,
                      typed_config(source, config))
            runner = SourceRunner(control, source, self.config.name, self.options.send_timeout_ms)
        else:
            sink_factory = self.config.sink(name)
            self._replace_running(control.key)
            sink = call_user("creating the instance", sink_factory)
            call_user("configure", sink.configure, typed_config(sink, config))
            runner = SinkRunner(control, sink, self.config.name, self.options.send_timeout_ms)
        with self._lock:
            self._runners[control.key] = runner
        runner.start()
        log.info("started %s", control.label())

    def _start_function(self, control: protocol.Control,
                        dial_deadline_s: float = channels.DIAL_DEADLINE_S) -> None:
        factory = self.config.function(control.symbol_name)
        key = "func_" + control.symbol_name
        # Held across check and create: the control thread and the rejoin at start-up
        # may start the same function at once.
        with self._function_lock:
            with self._lock:
                running = self._runners.get(key)
            # One instance per function name serves every rule; the host sends a start per
            # rule and replays them after a restart, so a second start is not an error.
            if running is not None and not running.released.is_set():
                return
            instance = call_user("creating the instance", factory)
            runner = FunctionRunner(control, instance, self.config.name, dial_deadline_s)
            with self._lock:
                self._runners[key] = runner
        runner.start()
        log.info("started %s", control.label())

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
            previous = [r for r in self._stopping if r.control.key == key]
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
        if self._retire(control.key) is None:
            # Stopping twice, or after a failed start, leaves the same state: not an error.
            log.warning("stop of %s, which is not running", control.label())
            return
        log.info("stopped %s", control.label())
