"""Run eKuiper portable plugins without eKuiper: a Python peer of the eKuiper host.

:class:`PluginHost` plays the eKuiper server's side of the portable-plugin protocol the
way the Go host does (``internal/plugin/portable/runtime`` in lf-edge/ekuiper): the same
sockets, the same listen/dial roles, the same order of operations, the inverted
request/reply on the control and function channels with its keepalive rule, the same
recovery when a reply socket holds no request, and the same JSON encoding and decoding
rules as Go's ``encoding/json``. It is an independent implementation: it shares no
encoder with the plugin runtime, so a test run against it catches the runtime's bugs.

Example::

    from ekuiper_sdk.testing import PluginHost

    with PluginHost("pysam", "plugins/pysam/pysam.py") as host:
        src = host.start_source("pyjson", rule_id="rule1", datasource="topic", config={"k": 1})
        print(src.take(3))                       # three SourceTuple(message, meta, raw)
        sink = host.start_sink("print", rule_id="rule1", config={"requireAck": True})
        sink.send({"a": 1})                      # waits for the plugin's ack
        print(host.function("revert").call("abc"))   # 'cba'

From a shell, ``ekuiper-plugin run PLUGIN_DIR`` runs a plugin folder's first source
through its first function into its first sink (:mod:`.pipeline`).

Where this module deliberately differs from the Go host, it is to fail fast in a test:
waits are bounded (eKuiper waits up to one hour on the control channel), a plugin process
that exits is noticed while waiting for its answer, and the whole process group is killed.
"""


from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import (
    IO,
    Any,
)

import pynng

from ..errors import HostError
from ..hosts import HostGeneration
from . import generation as generations
from .commands import control_struct
from .gojson import go_dumps_prepared
from .handles import FunctionHandle, SinkHandle, SourceHandle
from .plugin_output import TAIL_LINES, PluginOutput
from .socket_names import SUFFIX_ENV, choose_suffix, declared_functions, remove_stale_socket
from .sockets import (
    FUNCTION_TIMEOUT,
    MANGOS_QUEUE_LENGTH,
    RULE_BUFFER_LENGTH,
    SINK_SEND_TIMEOUT,
    RecvTimeout,
    ipc_path,
    ipc_url,
    listen,
    recv_within,
    send_rep,
    shortened,
)
from .source_config import start_config
from .waiting import wait_for

__all__ = ["PluginHost", "wait_for"]



class PluginHost:
    """One plugin process and its control channel, like eKuiper's ``PluginIns``.

    ``start()`` listens (REP) at ``ipc:///tmp/plugin_<name>.ipc``, launches
    ``<python> -u <executable> '{"sendTimeout":N}'`` in the executable's folder and waits
    for the plugin's handshake. Symbols are then started with :meth:`start_source`,
    :meth:`start_sink` and :meth:`function`; every start command that succeeded is kept,
    keyed by its rule/op/instance as eKuiper keys it, and replayed by :meth:`restart`.

    Args:
        name: the plugin's name, as its ``PluginConfig`` spells it.
        executable: the plugin's main script (or binary when ``language`` is ``"go"``).
        python: the interpreter; default ``sys.executable``, or ``python`` inside a conda
            environment (eKuiper's default ``portable.pythonBin``).
        send_timeout_ms: the ``sendTimeout`` handed to the plugin in its argument.
        init_timeout: seconds to wait for the handshake (eKuiper: ``portable.initTimeout``).
        control_timeout: seconds to wait for the answer to a command. eKuiper waits one
            hour; a test prefers to fail sooner.
        function_timeout: send and receive deadline of function calls (eKuiper: 5 s).
        env: variables added to this process's environment for the plugin.
        conda_env: run ``conda run -n <conda_env> <python> <executable> <arg>`` instead,
            as eKuiper does for a manifest with ``"virtualEnvType": "conda"``.
        language: ``"python"`` or ``"go"`` (a Go plugin's executable is run directly).
        echo: also write the plugin's output lines to this stream (True: ``sys.stderr``).
        output_lines: how many of the plugin's last output lines :attr:`output` keeps.
        rename: run the plugin under other socket names (``EKUIPER_SDK_NAME_SUFFIX``, which
            this SDK's runtime honours): None (default) only when a live listener, such as
            an eKuiper with the plugin installed, holds its control socket or a function's,
            with a :class:`SocketNameWarning`; True always; a string is the suffix; False
            never (a held name is then a :class:`HostError`). Tests use the code's names.
        generation: the eKuiper generation to behave like (``ekuiper_sdk.hosts``; default
            the newest); see :mod:`.generation` for what changes.

    Example::

        with PluginHost("pysam", "/path/to/pysam.py") as host:
            print(host.function("revert").call("abc"))     # 'cba'
    """

    def __init__(self, name: str, executable: str | os.PathLike[str], *,
                 python: str | None = None, send_timeout_ms: int = 1000,
                 init_timeout: float = 10.0, control_timeout: float = 30.0,
                 function_timeout: float = FUNCTION_TIMEOUT,
                 env: dict[str, str] | None = None, conda_env: str | None = None,
                 language: str = "python", echo: bool | IO[str] = False,
                 output_lines: int = 2000, rename: bool | str | None = None,
                 generation: HostGeneration | None = None) -> None:
        if not name or "/" in name or "\x00" in name:
            raise ValueError(f"plugin name {name!r} cannot be part of a socket path")
        if language not in ("python", "go"):
            raise ValueError(f"unsupported language: {language}")
        self.name = name
        self.executable = os.path.abspath(os.fspath(executable))
        self.python = python or ("python" if conda_env else sys.executable)
        self.send_timeout_ms = send_timeout_ms
        self.init_timeout = init_timeout
        self.control_timeout = control_timeout
        self.function_timeout = function_timeout
        self.env = dict(env or {})
        self.conda_env = conda_env
        self.language = language
        self._rename = rename
        #: What the host appends to the plugin's and its functions' names (see rename).
        self.suffix = ""
        self.generation = generation or generations.DEFAULT
        self._kept_acks: list[pynng.Socket] = []  # ack sockets a 1.x host never closes
        self._lazy_stop = generations.LazyStop(self._stop_idle)

        self._ctrl: pynng.Socket | None = None
        # One command at a time on the control socket, as the Go host's mutex does; every
        # use and the close of the socket happen under it.
        self._ctrl_lock = threading.Lock()
        self._life_lock = threading.RLock()     # start / restart / kill / close
        self._proc: subprocess.Popen[bytes] | None = None
        self._output = PluginOutput(name, output_lines,
                                    sys.stderr if echo is True else (echo or None))
        # eKuiper keys replayed commands by meta (rule, op, instance) only: see restart().
        self._commands: dict[tuple[str, str, int], bytes] = {}
        self._commands_lock = threading.Lock()
        self._handles: list[SourceHandle | SinkHandle] = []
        self._functions: dict[str, FunctionHandle] = {}
        self._plugin_listen_paths: set[str] = set()   # sink data sockets the plugin listens on
        self._listened: list[str] = []                # socket files this host listened on
        self._started = False
        self._closing = False
        self._closed = False

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> PluginHost:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        """Listen on the control channel, launch the plugin and wait for its handshake.

        Raises :class:`HostError`, with the end of the plugin's output, when the process
        exits or stays silent for ``init_timeout`` seconds; the host is closed then.

        Example::

            host = PluginHost("pysam", "pysam.py"); host.start()
        """
        with self._life_lock:
            if self._started:
                raise HostError(f"plugin host {self.name} is already started")
            if self._closed:
                raise HostError(f"plugin host {self.name} is closed")
            self._started = True
            try:
                self.suffix = choose_suffix(self.name, self.executable, self.language,
                                            self._rename, declared_functions(self.executable))
                if self.suffix:
                    self.env[SUFFIX_ENV] = self.suffix
                sock = pynng.Rep0()
                self._ctrl = sock
                listen(sock, self.control_url)
                self._listened.append(ipc_path(self.control_url))
                if not self.generation.lazy_start:  # else the first symbol's start does it
                    self._launch()
                    self._handshake()
            except BaseException:
                self.close()
                raise

    def restart(self) -> None:
        """Start a new plugin process on the same control channel and replay its symbols.

        Kills the current process if it still runs, launches a new one, waits for its
        handshake, then resends every start command still registered, in parallel threads
        as eKuiper does, and waits for their answers. Like eKuiper, commands are keyed by
        rule, op and instance only: functions all share the empty key, so only the last
        started function is replayed. Raises :class:`HostError` naming any replay that
        failed.

        Example::

            host.kill(); host.restart()      # sources, sinks and a function run again
        """
        with self._life_lock:
            self._require_started()
            self._kill_process()
            self._launch()
            self._handshake()
            self._replay()

    def kill(self) -> None:
        """SIGKILL the plugin process, keeping the control channel: what a crash looks like.

        Example::

            host.kill(); assert host.process.poll() is not None
        """
        with self._life_lock:
            self._kill_process()

    def close(self) -> None:
        """Stop every running source and sink, kill the plugin and release every socket.

        Stops are best effort with short deadlines; then the process group gets SIGKILL
        (eKuiper kills the plugin when it is deleted), the function and control sockets are
        closed, and socket files left in ``/tmp`` by this host's symbols are removed.
        Calling it again does nothing.

        Example::

            host.close()
        """
        with self._life_lock:
            if self._closed:
                return
            alive = self._alive()
            for handle in list(self._handles):
                try:
                    if alive:
                        handle.stop(timeout=2.0)
                    else:
                        handle.detach()
                except (HostError, pynng.NNGException):
                    handle.detach()
            self._closing = True
            self._lazy_stop.cancel()
            self._kill_process()
            for ack in self._kept_acks:
                ack.close()
            for func in list(self._functions.values()):
                func._close()
            with self._ctrl_lock:
                if self._ctrl is not None:
                    self._ctrl.close()
            self._output.join()
            self._closed = True
            # nng removes a listener's file when it closes; a plugin killed while listening
            # leaves its sink socket files behind. Only files of names this host used, and
            # only when nobody listens there any more (never eKuiper's own).
            for path in [*self._listened, *self._plugin_listen_paths]:
                remove_stale_socket(path)

    @property
    def control_url(self) -> str:
        """Where the host listens for the plugin's control channel."""
        return ipc_url(f"plugin_{self.name}{self.suffix}")

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The current plugin process (None before :meth:`start`)."""
        return self._proc

    @property
    def pid(self) -> int | None:
        """The current plugin process id."""
        return self._proc.pid if self._proc is not None else None

    @property
    def output(self) -> list[str]:
        """The plugin's last stdout and stderr lines, oldest first, across restarts."""
        return self._output.lines()

    def output_tail(self, lines: int = TAIL_LINES) -> str:
        """The last ``lines`` lines of the plugin's output, as one indented text."""
        return self._output.tail(lines)

    def wait_output(self, text: str, timeout: float = 5.0) -> str:
        """The first output line containing ``text``, waiting up to ``timeout`` seconds.

        The plugin's output is read by a thread of its own, so a line the plugin wrote
        before answering a command can reach :attr:`output` a moment after the answer.

        Example::

            host.wait_output("started source")
        """
        return self._output.wait(text, timeout)

    @property
    def registered_commands(self) -> list[bytes]:
        """The start commands :meth:`restart` would replay, as sent on the wire."""
        with self._commands_lock:
            return list(self._commands.values())

    def _require_started(self) -> None:
        if self._closed:
            raise HostError(f"plugin host {self.name} is closed")
        if not self._started:
            raise HostError(f"plugin host {self.name} is not started; call start() first")

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _argv(self) -> list[str]:
        arg = json.dumps({"sendTimeout": self.send_timeout_ms}, separators=(",", ":"))
        if self.language == "go":
            return [self.executable, arg]
        if self.conda_env:
            # eKuiper passes no -u here.
            return ["conda", "run", "-n", self.conda_env, self.python, self.executable, arg]
        return [self.python, "-u", self.executable, arg]

    def _launch(self) -> None:
        env = dict(os.environ)
        env.update(self.env)
        try:
            # A session of its own, so killing the group also ends a `conda run` wrapper's
            # child and whatever the plugin spawned (eKuiper kills only the direct child).
            proc = subprocess.Popen(self._argv(), cwd=os.path.dirname(self.executable),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True)
        except OSError as exc:
            raise HostError(f"fail to start plugin {self.name}: {exc}") from None
        self._proc = proc
        self._output.follow(proc)

    def _kill_process(self) -> None:
        proc = self._proc
        if proc is None:
            return
        # Only while the leader is unreaped is its pid surely still this group's id.
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                proc.kill()
        proc.wait()

    def dead_reason(self) -> str | None:
        if self._closing:
            return f"plugin host {self.name} is closing"
        proc = self._proc
        if proc is None or proc.poll() is not None:
            code = None if proc is None else proc.returncode
            # The first sentence is eKuiper's own wording for a command to a dead plugin.
            return (f"plugin {self.name} is not running successfully, please make sure it is "
                    f"valid (process exit code {code}); last output:\n{self.output_tail()}")
        return None

    def _handshake(self) -> None:
        """Wait for the plugin's first request; hold it, as the Go host's Handshake does."""
        with self._ctrl_lock:
            sock = self._ctrl
            assert sock is not None
            try:
                recv_within(sock, self.init_timeout, self.dead_reason)
            except RecvTimeout:
                self._kill_process()    # eKuiper kills a plugin that never shakes hands
                raise HostError(f"plugin {self.name} control handshake error: no handshake "
                                f"within {self.init_timeout:g}s; last output:\n"
                                f"{self.output_tail()}") from None
            except HostError:
                self._kill_process()
                raise

    def _replay(self) -> None:
        with self._commands_lock:
            commands = list(self._commands.items())
        errors: list[str] = []

        def replay(key: tuple[str, str, int], raw: bytes) -> None:
            try:
                answer = self._exchange(raw, self.control_timeout)
                if answer != b"ok":
                    errors.append(f"{key}: receive error: {shortened(answer)}")
            except HostError as exc:
                errors.append(f"{key}: {exc}")

        threads = [threading.Thread(target=replay, args=item, daemon=True) for item in commands]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise HostError(f"plugin {self.name} restarted but replaying its symbols failed: "
                            + "; ".join(errors))

    def _ensure_running(self) -> None:
        """Restart a plugin that died, as eKuiper's GetOrStartProcess does on next use."""
        with self._life_lock:
            self._require_started()
            if not self._alive():
                self.restart()

    def _refuse_second_handle(self, kind: str, symbol: str, url: str) -> None:
        """One handle per rule, op and instance: its sockets are named after them."""
        for handle in self._handles:
            if handle.url == url:
                raise HostError(f"{kind} {symbol!r} at {url} already has a running handle on "
                                f"this host ({handle.control['symbolName']!r}; restart() "
                                "replays it and the handle keeps receiving): use that handle, "
                                "or stop() it first")

    def forget(self, handle: object) -> None:
        """A handle that stopped is no longer this host's to stop."""
        # By identity, and without narrowing ``object`` (which older mypy cannot do).
        self._handles[:] = [held for held in self._handles if held is not handle]

    # -- control channel ----------------------------------------------------

    def send_command(self, raw: bytes, timeout: float = 5.0) -> bytes:
        """Send raw bytes as a control command and return the plugin's answer, unchecked.

        Follows the Go host exactly: if the REP socket holds no request (after a restart or
        an earlier time-out) one request is received and discarded first; an answer that
        begins with ``h`` is a keepalive and the same command is sent again. eKuiper would
        resend forever; here :class:`HostError` is raised when ``timeout`` seconds pass.

        Example::

            assert host.send_command(b'{"cmd":"stop","arg":"{}"}') != b""
        """
        if self.generation.lazy_start:
            self._ensure_running()  # 1.x starts the process on first use
        self._require_started()
        return self._exchange(bytes(raw), timeout)

    def _exchange(self, raw: bytes, timeout: float) -> bytes:
        with self._ctrl_lock:
            sock = self._ctrl
            if sock is None or self._closed:
                raise HostError(f"plugin host {self.name} is closed")
            deadline = time.monotonic() + timeout
            keepalives = 0
            while True:
                left = max(0.0, deadline - time.monotonic())
                try:
                    send_rep(sock, raw, left, self.dead_reason)
                    answer = recv_within(sock, left, self.dead_reason)
                except RecvTimeout:
                    extra = (f" (it answered {keepalives} times with a keepalive starting "
                             "with 'h', which eKuiper takes as a handshake and resends the "
                             "command forever)") if keepalives else ""
                    raise HostError(f"no answer from plugin {self.name} within {timeout:g}s to "
                                    f"command {shortened(raw, 120)}{extra}") from None
                except pynng.NNGException as exc:
                    raise HostError(f"control channel of plugin {self.name}: {exc}") from None
                if generations.resends_after(self.generation, answer):
                    keepalives += 1
                    continue
                return answer

    def send_control(self, cmd: str, control: dict[str, Any], timeout: float | None) -> None:
        """Send start/stop for ``control``; keep or drop it for replay like eKuiper."""
        # Go marshals the Control struct to text, then the Command struct around it.
        arg = go_dumps_prepared(control).decode("utf-8")
        raw = go_dumps_prepared({"cmd": cmd, "arg": arg})
        answer = self._exchange(raw, self.control_timeout if timeout is None else timeout)
        if answer != b"ok":
            raise HostError(f"receive error: {shortened(answer, 2000)}")
        meta = control["meta"]
        key = (meta["ruleId"], meta["opId"], meta["instanceId"])
        with self._commands_lock:
            if cmd == "start":
                self._commands[key] = raw
            else:
                self._commands.pop(key, None)
            idle = not self._commands
        if cmd == "stop" and idle and self.generation.lazy_start:
            self._lazy_stop.schedule()

    def _stop_idle(self) -> None:
        with self._life_lock, self._commands_lock:
            if not self._commands and not self._closed:
                self._kill_process()

    # -- symbols ---------------------------------------------------------------

    def start_source(self, symbol: str, rule_id: str, op_id: str = "op1", instance_id: int = 0,
                     datasource: str = "", config: dict[str, Any] | None = None, *,
                     conf_key: str | None = None, stream: dict[str, Any] | None = None,
                     data_source_field: bool = False,
                     buffer_length: int = RULE_BUFFER_LENGTH) -> SourceHandle:
        """Start a source instance and collect its tuples, as a rule's portable source does.

        The start carries the configuration a real eKuiper v2 builds
        (:mod:`.source_config`): the ``default`` section of the plugin folder's
        ``sources/<symbol>.yaml``, the ``conf_key`` section over it, ``config`` over that
        (as if it stood in the section), then the stream's properties, ``datasource``
        among them (``stream`` sets the others: ``format``, ``key``...). A ``conf_key``
        the yaml has no section for is ignored with a :class:`SourceConfigWarning`, as
        eKuiper logs a warning and starts the source with the ``default`` section. Like eKuiper, the
        command's own ``dataSource`` field stays empty; ``data_source_field=True`` fills it
        too, as older hosts did.

        The host's PULL socket listens at ``ipc:///tmp/<rule>_<op>_<instance>.ipc`` *before*
        ``start`` is sent; a thread then reads frames into a queue of ``buffer_length``
        tuples (eKuiper's rule buffer), which pushes back on the plugin when full.

        Example::

            src = host.start_source("pyjson", "rule1", datasource="t", config={"a": 1})
            first = src.recv()
        """
        try:
            merged = start_config(self.source_yaml(symbol), symbol, conf_key,
                                  datasource=datasource, stream=stream, overrides=config)
        except ValueError as exc:
            raise HostError(str(exc)) from None
        self._ensure_running()
        control = control_struct(symbol, "source", rule_id, op_id, instance_id,
                           datasource if data_source_field else "", merged)
        url = ipc_url(f"{rule_id}_{op_id}_{instance_id}")
        self._refuse_second_handle("source", symbol, url)
        sock = pynng.Pull0(recv_buffer_size=MANGOS_QUEUE_LENGTH)
        try:
            listen(sock, url)
            self.send_control("start", control, None)
        except BaseException:
            sock.close()
            raise
        handle = SourceHandle(self, control, sock, url, buffer_length)
        self._handles.append(handle)
        return handle

    def source_yaml(self, symbol: str) -> str:
        """The path of the source's default configuration: ``sources/<symbol>.yaml``
        beside the executable, where a plugin folder keeps it."""
        return os.path.join(os.path.dirname(self.executable), "sources", f"{symbol}.yaml")

    def start_sink(self, symbol: str, rule_id: str, op_id: str = "op1", instance_id: int = 0,
                   config: dict[str, Any] | None = None) -> SinkHandle:
        """Start a sink instance, as a rule's portable sink does, and return its handle.

        The ack PULL socket listens at ``..._ack.ipc``, ``start`` is sent with ``config``
        (the rule action's properties: ``requireAck``, ``sendSingle``...), and only after
        ``ok`` does the PUSH socket dial ``ipc:///tmp/<rule>_<op>_<instance>.ipc``
        synchronously: a plugin that is not listening by then fails the start (the host then
        sends ``stop``).

        Example::

            sink = host.start_sink("print", "rule1", config={"requireAck": True})
            sink.send({"a": 1})
        """
        require_ack = generations.sink_reads_acks(self.generation, config)
        self._ensure_running()
        control = control_struct(symbol, "sink", rule_id, op_id, instance_id, "", config)
        stem = f"{rule_id}_{op_id}_{instance_id}"
        url, ack_url = ipc_url(stem), ipc_url(stem + "_ack")
        self._refuse_second_handle("sink", symbol, url)
        ack = pynng.Pull0(recv_buffer_size=MANGOS_QUEUE_LENGTH)
        try:
            listen(ack, ack_url)
            self.send_control("start", control, None)
        except BaseException:
            ack.close()
            raise
        self._plugin_listen_paths.add(ipc_path(url))
        push = pynng.Push0(send_buffer_size=MANGOS_QUEUE_LENGTH,
                           send_timeout=int(SINK_SEND_TIMEOUT * 1000),
                           reconnect_time_min=100, reconnect_time_max=5000)
        try:
            push.dial(url, block=True)
        except pynng.NNGException as exc:
            push.close()
            ack.close()
            try:
                self.send_control("stop", control, 2.0)
            except HostError:
                pass
            raise HostError(f"can't dial on push socket: {exc} (the plugin answered ok to the "
                            f"start of sink {symbol!r} but is not listening at {url})") from None
        if not self.generation.closes_ack_socket:
            self._kept_acks.append(ack)
        handle = SinkHandle(self, control, push, ack, require_ack, url, ack_url,
                            close_ack=self.generation.closes_ack_socket)
        self._handles.append(handle)
        return handle

    def function(self, symbol: str) -> FunctionHandle:
        """The handle of a function, created on first use and kept for the host's lifetime.

        The first time, the REP socket listens at ``ipc:///tmp/func_<symbol>.ipc`` and
        ``start`` is sent with an empty meta, as eKuiper does when a rule first uses the
        function; it is never stopped.

        Example::

            assert host.function("revert").call("abc") == "cba"
        """
        existing = self._functions.get(symbol)
        if existing is not None:
            return existing
        self._ensure_running()
        if not symbol or "/" in symbol or "\x00" in symbol:
            raise ValueError(f"function name {symbol!r} cannot be part of a socket path")
        url = ipc_url(f"func_{symbol}{self.suffix}")
        sock = pynng.Rep0()
        try:
            listen(sock, url)
            # The Go struct has no omitempty on meta: the empty meta is sent.
            control = control_struct(symbol + self.suffix, "func", "", "", 0, "", None)
            self.send_control("start", control, None)
        except BaseException:
            sock.close()
            raise
        handle = FunctionHandle(self, symbol, sock, url, self.function_timeout)
        self._functions[symbol] = handle
        return handle
