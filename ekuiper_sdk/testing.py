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

From a shell, ``python -m ekuiper_sdk.testing run PLUGIN_DIR`` runs a plugin folder's
first source through its first function into its first sink (see :func:`run_pipeline`).

Where this module deliberately differs from the Go host, it is to fail fast in a test:
waits are bounded (eKuiper waits up to one hour on the control channel), a plugin process
that exits is noticed while waiting for its answer, and the whole process group is killed.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import math
import os
import queue
import random
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import (
    IO,
    Any,
    Callable,
    Deque,
    Dict,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import pynng

from .source_config import read_sections, source_config

__all__ = [
    "PluginHost", "SourceHandle", "SinkHandle", "FunctionHandle", "SourceTuple", "FuncReply",
    "HostError", "InvalidFrameError", "SinkAckError", "FunctionError", "run_pipeline",
    "go_json_dumps", "decode_source_frame", "main", "wait_for",
]

# Socket time limits of the Go host (kuiper.yaml defaults and runtime/connection.go).
FUNCTION_TIMEOUT = 5.0       # portable.sendTimeout / recvTimeout on the function REP socket
SINK_SEND_TIMEOUT = 5.0      # portable.sendTimeout on the sink PUSH socket
ACK_RECV_TIMEOUT = 1.0       # the sink ack PULL socket's receive deadline, used in a loop
# mangos PUSH and PULL sockets queue 128 messages; nng's default is none, so the host would
# push back on a plugin much sooner than eKuiper does without these.
MANGOS_QUEUE_LENGTH = 128
# eKuiper's default rule bufferLength: how many tuples a source may get ahead of the rule.
RULE_BUFFER_LENGTH = 1024
# How long any wait in this module blocks before it looks again at why it might stop
# (process exited, handle stopped, host closed). Short enough to feel instant.
_TICK = 0.1
_TAIL_LINES = 20


class HostError(Exception):
    """The host could not do what was asked; the message says what and why.

    Messages that eKuiper would show a user keep eKuiper's wording (``receive error: ...``).
    """


class InvalidFrameError(HostError):
    """A source frame eKuiper could not decode into a tuple; ``raw`` holds the frame."""

    def __init__(self, message: str, raw: bytes) -> None:
        super().__init__(message)
        self.raw = raw


class SinkAckError(HostError):
    """A sink acknowledged a frame with ``{"error": text}``; ``text`` is that text."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class FunctionError(HostError):
    """A function call answered ``{"state": false, "result": ...}``; ``result`` is that result."""

    def __init__(self, result: Any) -> None:
        super().__init__(_go_sprint(result))
        self.result = result


class SourceTuple(NamedTuple):
    """One tuple from a source: ``message`` and ``meta`` as eKuiper decoded them, and the frame.

    ``message`` is None for a frame without one, such as the official SDK's
    ``{"error": ...}`` frames (eKuiper v2 feeds those to the rule as an empty tuple).
    """

    message: Optional[Dict[str, Any]]
    meta: Optional[Dict[str, Any]]
    raw: bytes


class FuncReply(NamedTuple):
    """A function's reply: ``state`` False means failure, with the reason in ``result``."""

    state: bool
    result: Any


# ---------------------------------------------------------------------------
# JSON as Go's encoding/json writes and reads it


def _go_value(value: Any) -> Any:
    """Turn a Python value into what Go would marshal for the same data."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"json: unsupported value: {value!r}")
        # Go writes an integral float64 without a fraction ("2", not "2.0"), so a plugin
        # decoding the frame gets an int where eKuiper holds a float64.
        if value.is_integer() and abs(value) < 1e21:
            return int(value)
        return value
    if isinstance(value, dict):
        items = [(_go_key(k), _go_value(v)) for k, v in value.items()]
        # Go sorts the keys of a map by their bytes.
        items.sort(key=lambda kv: kv[0].encode("utf-8", "surrogatepass"))
        return dict(items)
    if isinstance(value, (list, tuple)):
        return [_go_value(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")   # how Go sends []byte
    raise ValueError(f"json: unsupported type: {type(value).__name__}")


def _go_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    raise ValueError(f"json: unsupported map key type: {type(key).__name__}")


def _go_dumps_prepared(value: Any) -> bytes:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # Go escapes these inside strings (HTML safety and JavaScript line separators).
    for char, escape in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        if char in text:
            text = text.replace(char, escape)
    return text.encode("utf-8", "replace")


def go_json_dumps(value: Any) -> bytes:
    """Encode ``value`` as Go's ``json.Marshal`` would encode the same data.

    Map keys sorted, no spaces, ``<``, ``>`` and ``&`` escaped, integral floats without a
    fraction, ``bytes`` as base64; ``NaN`` and ``Infinity`` are refused with ``ValueError``.

    >>> go_json_dumps({"b": 1.0, "a": "<x>", "c": b"hi"})
    b'{"a":"\\\\u003cx\\\\u003e","b":1,"c":"aGk="}'
    """
    return _go_dumps_prepared(_go_value(value))


class _GoJSONError(ValueError):
    pass


_MAX_FLOAT64 = sys.float_info.max


def _go_loads(raw: bytes) -> Tuple[Any, List[Tuple[str, Any]]]:
    """Parse JSON as Go's decoder accepts it; also return the top-level object's key pairs.

    The pairs keep every key in order, which Go's case-insensitive field matching needs.
    """
    top_pairs: List[List[Tuple[str, Any]]] = [[]]

    def pairs_hook(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
        top_pairs[0] = pairs     # the outermost object is the last one finished
        return dict(pairs)

    def reject_constant(name: str) -> Any:
        raise _GoJSONError(f"invalid character '{name[0]}' looking for beginning of value")

    def parse_float(text: str) -> float:
        number = float(text)
        if math.isinf(number):
            raise _GoJSONError(f"cannot unmarshal number {text} into Go value of type float64")
        return number

    def parse_int(text: str) -> int:
        number = int(text)
        if abs(number) > _MAX_FLOAT64:
            raise _GoJSONError(f"cannot unmarshal number {text} into Go value of type float64")
        return number

    # Go replaces invalid UTF-8 inside strings with U+FFFD instead of failing; outside a
    # string any non-ASCII byte is a syntax error for both decoders.
    text = bytes(raw).decode("utf-8", "replace")
    try:
        value = json.loads(text, object_pairs_hook=pairs_hook, parse_constant=reject_constant,
                           parse_float=parse_float, parse_int=parse_int)
    except _GoJSONError:
        raise
    except RecursionError:
        raise _GoJSONError("exceeded max depth") from None
    except ValueError as exc:
        raise _GoJSONError(str(exc)) from None
    return value, top_pairs[0]


def _go_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"


def _go_field(pairs: List[Tuple[str, Any]], name: str) -> Any:
    """The value Go's decoder would store in the struct field ``name``.

    Go matches keys to fields case-insensitively (with Unicode folding) and the last
    matching key wins.
    """
    found = None
    folded = name.casefold()
    for key, value in pairs:
        if key == name or key.casefold() == folded:
            found = value
    return found


def _go_struct(raw: bytes, type_name: str) -> Optional[List[Tuple[str, Any]]]:
    """Decode a JSON object into key pairs the way ``json.Unmarshal`` into a struct would."""
    value, pairs = _go_loads(raw)
    if value is None:           # JSON null leaves a Go struct untouched
        return None
    if not isinstance(value, dict):
        raise _GoJSONError(f"json: cannot unmarshal {_go_kind(value)} into Go value of type "
                           f"{type_name}")
    return pairs


def decode_source_frame(raw: bytes) -> SourceTuple:
    """Decode one source frame as the Go host does, or raise :class:`InvalidFrameError`.

    ``message`` and ``meta`` must be JSON objects or null; anything Go's decoder refuses
    (``NaN``, an array as message, numbers beyond float64...) makes the frame invalid.

    >>> decode_source_frame(b'{"Message": {"a": 1}, "meta": null}').message
    {'a': 1}
    """
    try:
        pairs = _go_struct(raw, "runtime.messageWrapper")
        message = meta = None
        if pairs is not None:
            message = _go_field(pairs, "message")
            meta = _go_field(pairs, "meta")
            for name, value in (("message", message), ("meta", meta)):
                if value is not None and not isinstance(value, dict):
                    raise _GoJSONError(
                        f"json: cannot unmarshal {_go_kind(value)} into Go struct field "
                        f"messageWrapper.{name} of type map[string]interface {{}}")
    except _GoJSONError as exc:
        text = bytes(raw).decode("utf-8", "replace")
        raise InvalidFrameError(f"Invalid data format, cannot decode {text} to json format "
                                f"with error {exc}", bytes(raw)) from None
    return SourceTuple(message, meta, bytes(raw))


def _decode_func_reply(raw: bytes) -> FuncReply:
    try:
        pairs = _go_struct(raw, "runtime.FuncReply")
        if pairs is None:
            return FuncReply(False, None)
        state = _go_field(pairs, "state")
        if state is not None and not isinstance(state, bool):
            raise _GoJSONError(f"json: cannot unmarshal {_go_kind(state)} into Go struct field "
                               "FuncReply.state of type bool")
        return FuncReply(bool(state), _go_field(pairs, "result"))
    except _GoJSONError:
        raise HostError("Failed to unmarshal function result "
                        f"{bytes(raw).decode('utf-8', 'replace')}") from None


def _decode_ack(raw: bytes) -> Tuple[Dict[str, Any], str]:
    """The ack as a dict, and its error text ("" for success)."""
    try:
        value, pairs = _go_loads(raw)
        if value is not None and not isinstance(value, dict):
            raise _GoJSONError(f"json: cannot unmarshal {_go_kind(value)} into Go value of "
                               "type runtime.ackResponse")
        error = _go_field(pairs, "error") if value is not None else None
        if error is not None and not isinstance(error, str):
            raise _GoJSONError(f"json: cannot unmarshal {_go_kind(error)} into Go struct field "
                               "ackResponse.error of type string")
    except _GoJSONError as exc:
        raise HostError(f"invalid sink ack {bytes(raw)!r}: {exc}") from None
    return (value or {}), (error or "")


def _go_sprint(value: Any) -> str:
    """Roughly what Go's ``fmt.Sprintf("%s", value)`` shows for a decoded JSON value."""
    return value if isinstance(value, str) else json.dumps(value)


# ---------------------------------------------------------------------------
# Sockets


def _ipc_url(stem: str) -> str:
    return f"ipc:///tmp/{stem}.ipc"


def _ipc_path(url: str) -> str:
    return url[len("ipc://"):]


def _listen(sock: pynng.Socket, url: str) -> None:
    """Listen like the Go host: five more tries 100 ms apart (a stale file may linger)."""
    sock.recv_max_size = 0      # eKuiper sets no size limit; nng's default is 1 MiB
    for attempt in range(6):
        try:
            sock.listen(url)
            return
        except pynng.NNGException:
            if attempt == 5:
                raise
            time.sleep(0.1)


class _RecvTimeout(Exception):
    pass


def _recv_within(sock: pynng.Socket, timeout: float,
                 abort: Optional[Callable[[], Optional[str]]] = None) -> bytes:
    """Receive one message within ``timeout`` seconds.

    The wait is cut into short receives so that ``abort`` (which returns a reason to give
    up, or None) is looked at often; a receive that times out loses nothing on an nng
    socket, so this is the same as one long receive.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _RecvTimeout()
        sock.recv_timeout = max(1, int(min(_TICK, left) * 1000))
        try:
            return bytes(sock.recv())
        except pynng.Timeout:
            reason = abort() if abort is not None else None
            if reason:
                raise HostError(reason) from None


def _remove_socket_file(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass


def _short(data: bytes, limit: int = 300) -> str:
    text = data.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------------------
# The plugin process and its control channel


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

    Example::

        with PluginHost("pysam", "/path/to/pysam.py") as host:
            print(host.function("revert").call("abc"))     # 'cba'
    """

    def __init__(self, name: str, executable: Union[str, "os.PathLike[str]"], *,
                 python: Optional[str] = None, send_timeout_ms: int = 1000,
                 init_timeout: float = 10.0, control_timeout: float = 30.0,
                 function_timeout: float = FUNCTION_TIMEOUT,
                 env: Optional[Dict[str, str]] = None, conda_env: Optional[str] = None,
                 language: str = "python", echo: Union[bool, IO[str]] = False,
                 output_lines: int = 2000) -> None:
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
        self._echo: Optional[IO[str]] = sys.stderr if echo is True else (echo or None)
        self.control_url = _ipc_url(f"plugin_{name}")

        self._ctrl: Optional[pynng.Socket] = None
        # One command at a time on the control socket, as the Go host's mutex does; every
        # use and the close of the socket happen under it.
        self._ctrl_lock = threading.Lock()
        self._life_lock = threading.RLock()     # start / restart / kill / close
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self._readers: List[threading.Thread] = []
        self._output: Deque[str] = collections.deque(maxlen=output_lines)
        self._output_lock = threading.Lock()
        # eKuiper keys replayed commands by meta (rule, op, instance) only: see restart().
        self._commands: Dict[Tuple[str, str, int], bytes] = {}
        self._commands_lock = threading.Lock()
        self._handles: List[Union[SourceHandle, SinkHandle]] = []
        self._functions: Dict[str, FunctionHandle] = {}
        self._plugin_listen_paths: set[str] = set()   # sink data sockets the plugin listens on
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
                sock = pynng.Rep0()
                self._ctrl = sock
                _listen(sock, self.control_url)
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
                        handle._shutdown()
                except (HostError, pynng.NNGException):
                    handle._shutdown()
            self._closing = True
            self._kill_process()
            for func in list(self._functions.values()):
                func._close()
            with self._ctrl_lock:
                if self._ctrl is not None:
                    self._ctrl.close()
            for reader in self._readers:
                reader.join(timeout=2.0)
            self._closed = True
            # nng removes a listener's file when it closes; a plugin killed while listening
            # leaves its sink socket files behind.
            for path in [_ipc_path(self.control_url), *self._plugin_listen_paths]:
                _remove_socket_file(path)

    @property
    def process(self) -> Optional[subprocess.Popen[bytes]]:
        """The current plugin process (None before :meth:`start`)."""
        return self._proc

    @property
    def pid(self) -> Optional[int]:
        """The current plugin process id."""
        return self._proc.pid if self._proc is not None else None

    @property
    def output(self) -> List[str]:
        """The plugin's last stdout and stderr lines, oldest first, across restarts."""
        with self._output_lock:
            return list(self._output)

    def output_tail(self, lines: int = _TAIL_LINES) -> str:
        """The last ``lines`` lines of the plugin's output, as one indented text."""
        tail = self.output[-lines:]
        return "\n".join("  | " + line for line in tail) if tail else "  | (no output)"

    @property
    def registered_commands(self) -> List[bytes]:
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

    def _argv(self) -> List[str]:
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
        reader = threading.Thread(target=self._read_output, args=(proc,), daemon=True,
                                  name=f"ekuiper-host-output-{self.name}")
        reader.start()
        self._readers.append(reader)

    def _read_output(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for raw in iter(proc.stdout.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                with self._output_lock:
                    self._output.append(line)
                if self._echo is not None:
                    try:
                        self._echo.write(f"[{self.name}] {line}\n")
                        self._echo.flush()
                    except (OSError, ValueError):
                        pass

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

    def _dead_reason(self) -> Optional[str]:
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
                _recv_within(sock, self.init_timeout, self._dead_reason)
            except _RecvTimeout:
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
        errors: List[str] = []

        def replay(key: Tuple[str, str, int], raw: bytes) -> None:
            try:
                answer = self._exchange(raw, self.control_timeout)
                if answer != b"ok":
                    errors.append(f"{key}: receive error: {_short(answer)}")
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
                    _send_rep(sock, raw, left, self._dead_reason)
                    answer = _recv_within(sock, left, self._dead_reason)
                except _RecvTimeout:
                    extra = (f" (it answered {keepalives} times with a keepalive starting "
                             "with 'h', which eKuiper takes as a handshake and resends the "
                             "command forever)") if keepalives else ""
                    raise HostError(f"no answer from plugin {self.name} within {timeout:g}s to "
                                    f"command {_short(raw, 120)}{extra}") from None
                except pynng.NNGException as exc:
                    raise HostError(f"control channel of plugin {self.name}: {exc}") from None
                if answer[:1] == b"h":
                    keepalives += 1
                    continue
                return answer

    def _command(self, cmd: str, control: Dict[str, Any], timeout: Optional[float]) -> None:
        """Send start/stop for ``control``; keep or drop it for replay like eKuiper."""
        # Go marshals the Control struct to text, then the Command struct around it.
        arg = _go_dumps_prepared(control).decode("utf-8")
        raw = _go_dumps_prepared({"cmd": cmd, "arg": arg})
        answer = self._exchange(raw, self.control_timeout if timeout is None else timeout)
        if answer != b"ok":
            raise HostError(f"receive error: {_short(answer, 2000)}")
        meta = control["meta"]
        key = (meta["ruleId"], meta["opId"], meta["instanceId"])
        with self._commands_lock:
            if cmd == "start":
                self._commands[key] = raw
            else:
                self._commands.pop(key, None)

    # -- symbols ---------------------------------------------------------------

    def start_source(self, symbol: str, rule_id: str, op_id: str = "op1", instance_id: int = 0,
                     datasource: str = "", config: Optional[Dict[str, Any]] = None, *,
                     conf_key: Optional[str] = None, stream: Optional[Dict[str, Any]] = None,
                     data_source_field: bool = False,
                     buffer_length: int = RULE_BUFFER_LENGTH) -> SourceHandle:
        """Start a source instance and collect its tuples, as a rule's portable source does.

        The start carries the configuration a real eKuiper v2 builds
        (:mod:`ekuiper_sdk.source_config`): the ``default`` section of the plugin folder's
        ``sources/<symbol>.yaml``, the ``conf_key`` section over it, ``config`` over that
        (as if it stood in the section), then the stream's properties, ``datasource``
        among them (``stream`` sets the others: ``format``, ``key``...). Like eKuiper, the
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
            merged = source_config(read_sections(self.source_yaml(symbol)), conf_key,
                                   datasource=datasource, stream=stream, overrides=config)
        except ValueError as exc:
            raise HostError(str(exc)) from None
        self._ensure_running()
        control = _control(symbol, "source", rule_id, op_id, instance_id,
                           datasource if data_source_field else "", merged)
        url = _ipc_url(f"{rule_id}_{op_id}_{instance_id}")
        sock = pynng.Pull0(recv_buffer_size=MANGOS_QUEUE_LENGTH)
        try:
            _listen(sock, url)
            self._command("start", control, None)
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
                   config: Optional[Dict[str, Any]] = None) -> SinkHandle:
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
        require_ack = False
        for key, value in (config or {}).items():
            # eKuiper reads requireAck with mapstructure: any key case, a bool or nothing.
            if isinstance(key, str) and key.casefold() == "requireack" and value is not None:
                if not isinstance(value, bool):
                    raise HostError(f"1 error(s) decoding:\n\n* '{key}' expected type 'bool', "
                                    f"got unconvertible type '{type(value).__name__}'")
                require_ack = value
        self._ensure_running()
        control = _control(symbol, "sink", rule_id, op_id, instance_id, "", config)
        stem = f"{rule_id}_{op_id}_{instance_id}"
        url, ack_url = _ipc_url(stem), _ipc_url(stem + "_ack")
        ack = pynng.Pull0(recv_buffer_size=MANGOS_QUEUE_LENGTH)
        try:
            _listen(ack, ack_url)
            self._command("start", control, None)
        except BaseException:
            ack.close()
            raise
        self._plugin_listen_paths.add(_ipc_path(url))
        push = pynng.Push0(send_buffer_size=MANGOS_QUEUE_LENGTH,
                           send_timeout=int(SINK_SEND_TIMEOUT * 1000),
                           reconnect_time_min=100, reconnect_time_max=5000)
        try:
            push.dial(url, block=True)
        except pynng.NNGException as exc:
            push.close()
            ack.close()
            try:
                self._command("stop", control, 2.0)
            except HostError:
                pass
            raise HostError(f"can't dial on push socket: {exc} (the plugin answered ok to the "
                            f"start of sink {symbol!r} but is not listening at {url})") from None
        handle = SinkHandle(self, control, push, ack, require_ack, url, ack_url)
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
        url = _ipc_url(f"func_{symbol}")
        sock = pynng.Rep0()
        try:
            _listen(sock, url)
            # The Go struct has no omitempty on meta: the empty meta is sent.
            self._command("start", _control(symbol, "func", "", "", 0, "", None), None)
        except BaseException:
            sock.close()
            raise
        handle = FunctionHandle(self, symbol, sock, url, self.function_timeout)
        self._functions[symbol] = handle
        return handle


def _control(symbol: str, plugin_type: str, rule_id: str, op_id: str, instance_id: int,
             datasource: str, config: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The Control struct in Go's field order, with Go's omitempty rules."""
    if plugin_type != "func":
        for kind, value in (("rule id", rule_id), ("op id", op_id)):
            if not value or "/" in value or "\x00" in value:
                raise ValueError(f"{kind} {value!r} cannot be part of a socket path")
    control: Dict[str, Any] = {
        "symbolName": symbol,
        "meta": {"ruleId": rule_id, "opId": op_id, "instanceId": int(instance_id)},
        "pluginType": plugin_type,
    }
    if datasource:
        control["dataSource"] = datasource
    if config:
        control["config"] = _go_value(dict(config))
    return control


def _send_rep(sock: pynng.Socket, raw: bytes, timeout: float,
              abort: Callable[[], Optional[str]]) -> None:
    """Reply on a REP socket, first taking and dropping a request if none is held.

    That is the Go host's ErrProtoState recovery: after a plugin restart or a receive
    that timed out, the socket holds no request to reply to.
    """
    try:
        sock.send(raw)
    except pynng.BadState:
        _recv_within(sock, timeout, abort)
        sock.send(raw)


def _describe(control: Dict[str, Any]) -> str:
    meta = control["meta"]
    return (f"{control['pluginType']} {control['symbolName']!r} (rule {meta['ruleId']!r}, "
            f"op {meta['opId']!r}, instance {meta['instanceId']})")


# ---------------------------------------------------------------------------
# Sources


class SourceHandle:
    """A running source instance: its tuples arrive in a queue filled by a reader thread.

    The reader thread is the only user of the PULL socket and closes it itself, so a stop
    never closes a socket another thread is receiving on.
    """

    def __init__(self, host: PluginHost, control: Dict[str, Any], sock: pynng.Socket, url: str,
                 buffer_length: int) -> None:
        self.host = host
        self.control = control
        self.symbol: str = control["symbolName"]
        self.url = url
        self._sock = sock
        self._queue: queue.Queue[Union[SourceTuple, InvalidFrameError]] = queue.Queue(
            maxsize=max(1, buffer_length))
        self._stop = threading.Event()
        self._reading = threading.Event()
        self._reading.set()
        self._stopped = False
        self.frames = 0     #: frames read from the socket so far
        self._thread = threading.Thread(target=self._read_loop, daemon=True,
                                        name=f"ekuiper-host-source-{url}")
        self._thread.start()

    def _read_loop(self) -> None:
        sock = self._sock
        try:
            sock.recv_timeout = int(_TICK * 1000)
            while not self._stop.is_set():
                if not self._reading.is_set():
                    self._reading.wait(_TICK)
                    continue
                try:
                    raw = bytes(sock.recv())
                except pynng.Timeout:
                    continue
                except pynng.NNGException:
                    break
                self.frames += 1
                item: Union[SourceTuple, InvalidFrameError]
                try:
                    item = decode_source_frame(raw)
                except InvalidFrameError as exc:
                    item = exc
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=_TICK)
                        break
                    except queue.Full:
                        continue
        finally:
            sock.close()

    def recv(self, timeout: float = 5.0) -> SourceTuple:
        """The next tuple; :class:`InvalidFrameError` for a frame eKuiper could not decode.

        Raises :class:`HostError` when nothing arrives within ``timeout`` seconds.

        Example::

            t = src.recv(); print(t.message, t.meta)
        """
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise HostError(f"no tuple from {_describe(self.control)} within {timeout:g}s; "
                            f"plugin output:\n{self.host.output_tail()}") from None
        if isinstance(item, InvalidFrameError):
            raise item
        return item

    def take(self, n: int, timeout: float = 5.0) -> List[SourceTuple]:
        """The next ``n`` tuples, all within ``timeout`` seconds.

        Example::

            assert len(src.take(3)) == 3
        """
        deadline = time.monotonic() + timeout
        return [self.recv(max(0.0, deadline - time.monotonic())) for _ in range(n)]

    def pending(self) -> int:
        """How many tuples are read and waiting in the queue."""
        return self._queue.qsize()

    def pause_reading(self) -> None:
        """Stop receiving from the socket, so the plugin meets backpressure.

        Example::

            src.pause_reading(); time.sleep(2); src.resume_reading()
        """
        self._reading.clear()

    def resume_reading(self) -> None:
        """Receive from the socket again after :meth:`pause_reading`."""
        self._reading.set()

    def stop(self, timeout: Optional[float] = None) -> None:
        """Close the PULL socket, then send ``stop``, as eKuiper does when the rule stops.

        Raises :class:`HostError` when the plugin's answer is not ``ok``. Tuples already
        queued can still be read with :meth:`recv`. Calling it again does nothing.

        Example::

            src.stop()
        """
        if self._stopped:
            return
        self._shutdown()
        self.host._command("stop", self.control, timeout)

    def _shutdown(self) -> None:
        self._stopped = True
        self._stop.set()
        self._reading.set()
        self._thread.join()
        if self in self.host._handles:
            self.host._handles.remove(self)


# ---------------------------------------------------------------------------
# Sinks


def _encode_sink_data(data: Union[bytes, bytearray, Dict[str, Any], List[Any]]) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, (dict, list)):
        try:
            return go_json_dumps(data)
        except ValueError as exc:
            raise HostError(f"cannot encode sink data as eKuiper would: {exc}") from None
    raise TypeError(f"sink data must be bytes, a dict or a list, got {type(data).__name__}")


class SinkHandle:
    """A running sink instance: frames go out on a PUSH socket, acks come back on a PULL.

    Both sockets are used only under one lock, and :meth:`stop` closes them under it.
    """

    def __init__(self, host: PluginHost, control: Dict[str, Any], push: pynng.Socket,
                 ack: pynng.Socket, require_ack: bool, url: str, ack_url: str) -> None:
        self.host = host
        self.control = control
        self.symbol: str = control["symbolName"]
        self.require_ack = require_ack
        self.url = url
        self.ack_url = ack_url
        self._push = push
        self._ack = ack
        self._lock = threading.Lock()
        self._stopping = False
        self._stopped = False

    def send(self, data: Union[bytes, bytearray, Dict[str, Any], List[Any]], *,
             ack_timeout: float = 10.0) -> None:
        """Send one frame: bytes as they are, a dict or list as eKuiper's JSON encoder would.

        A dict is what a rule with ``sendSingle: true`` sends, a list of dicts the default.
        With ``requireAck`` in the sink's config this waits for the ack, as eKuiper does,
        and raises :class:`SinkAckError` for ``{"error": ...}``; eKuiper waits until the
        rule stops, this raises :class:`HostError` after ``ack_timeout`` seconds.

        Example::

            sink.send({"temperature": 21.5})
        """
        payload = _encode_sink_data(data)
        with self._lock:
            if self._stopped or self._stopping:
                raise HostError(f"{_describe(self.control)} is stopped")
            try:
                self._push.send(payload)
            except pynng.Timeout:
                raise HostError(f"io error: send to {_describe(self.control)} timed out after "
                                f"{SINK_SEND_TIMEOUT:g}s") from None
            if self.require_ack:
                _, error = _decode_ack(self._recv_ack_locked(ack_timeout))
                if error:
                    raise SinkAckError(error)

    def send_rows(self, rows: Sequence[Dict[str, Any]], *, ack_timeout: float = 10.0) -> int:
        """Send rows framed as a real eKuiper frames them for this sink's config; return
        the number of frames sent.

        Seen on a real eKuiper v2: with ``batchSize`` or ``lingerInterval`` the rows go as
        one frame, ``[{...}, {...}]`` with ``sendSingle`` and ``[[{...}], [{...}]]``
        without; with neither, ``sendSingle`` sends each row as a frame of its own and the
        default sends the rows as one array (a window's output).

        Example::

            sink.send_rows([{"n": 1}, {"n": 2}])
        """
        config = {str(k).casefold(): v for k, v in (self.control.get("config") or {}).items()}
        single = config.get("sendsingle") is True
        batched = bool(config.get("batchsize")) or bool(config.get("lingerinterval"))
        frames: List[Any]
        if batched:
            frames = [list(rows) if single else [[row] for row in rows]]
        else:
            frames = list(rows) if single else [list(rows)]
        for frame in frames:
            self.send(frame, ack_timeout=ack_timeout)
        return len(frames)

    def recv_ack(self, timeout: float = 5.0) -> Dict[str, Any]:
        """Read one ack frame and return it decoded (``{}`` or ``{"error": ...}``).

        Useful without ``requireAck``, when eKuiper would leave acks unread.

        Example::

            assert sink.recv_ack() == {}
        """
        with self._lock:
            if self._stopped:
                raise HostError(f"{_describe(self.control)} is stopped")
            value, _ = _decode_ack(self._recv_ack_locked(timeout))
            return value

    def _recv_ack_locked(self, timeout: float) -> bytes:
        # eKuiper receives with a 1 s deadline in a loop until the rule stops.
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HostError(f"no ack from {_describe(self.control)} within {timeout:g}s")
            try:
                return _recv_within(self._ack, min(ACK_RECV_TIMEOUT, left), self._abort)
            except _RecvTimeout:
                continue

    def _abort(self) -> Optional[str]:
        if self._stopping:
            return f"{_describe(self.control)} is stopping"
        return self.host._dead_reason()

    def stop(self, timeout: Optional[float] = None) -> None:
        """Close the data and ack sockets, then send ``stop``, as eKuiper does.

        Raises :class:`HostError` when the plugin's answer is not ``ok``. Calling it again
        does nothing.

        Example::

            sink.stop()
        """
        if self._stopped:
            return
        self._shutdown()
        self.host._command("stop", self.control, timeout)

    def _shutdown(self) -> None:
        self._stopping = True   # a send waiting for an ack gives up within a tick
        with self._lock:
            if not self._stopped:
                self._stopped = True
                self._push.close()
                self._ack.close()
        if self in self.host._handles:
            self.host._handles.remove(self)


# ---------------------------------------------------------------------------
# Functions


class FunctionHandle:
    """A function's channel: the host's REP socket at ``ipc:///tmp/func_<symbol>.ipc``.

    Calls are sent one at a time under a lock, like the Go host's; the plugin's first
    request (its handshake) is taken and dropped by the first call.
    """

    def __init__(self, host: PluginHost, symbol: str, sock: pynng.Socket, url: str,
                 timeout: float) -> None:
        self.host = host
        self.symbol = symbol
        self.url = url
        self.timeout = timeout
        self._sock = sock
        self._lock = threading.Lock()
        self._is_agg = 0        # as in Go: 0 unknown, 1 no, 2 yes
        self._closed = False

    def request(self, raw: bytes) -> bytes:
        """Send raw bytes as a function request and return the raw reply.

        The Go host's loop: recover a socket that holds no request by dropping one, and
        resend when the reply starts with ``h`` (a keepalive). Each receive waits at most
        the function timeout (5 s); :class:`HostError` reports a time-out the way eKuiper
        words it, or a plugin that keeps sending keepalives.

        Example::

            fh.request(b'{"func":"IsAggregate","arg":null}')   # b'{"state": true, ...}'
        """
        with self._lock:
            if self._closed:
                raise HostError(f"function {self.symbol!r} channel is closed")
            give_up = time.monotonic() + 3 * self.timeout
            while True:
                try:
                    _send_rep(self._sock, raw, self.timeout, self.host._dead_reason)
                    reply = _recv_within(self._sock, self.timeout, self.host._dead_reason)
                except _RecvTimeout:
                    raise HostError(f"time out, plugin {self.host.name} function "
                                    f"{self.symbol!r} gave no reply within "
                                    f"{self.timeout:g}s") from None
                except pynng.NNGException as exc:
                    raise HostError(f"function {self.symbol!r} channel: {exc}") from None
                if reply[:1] == b"h":
                    if time.monotonic() > give_up:
                        raise HostError(f"function {self.symbol!r} keeps replying with "
                                        "keepalives starting with 'h'; eKuiper would resend "
                                        "forever")
                    continue
                return reply

    def _call(self, name: str, arg: Any) -> bytes:
        try:
            raw = _go_dumps_prepared({"func": name, "arg": _go_value(arg)})
        except ValueError as exc:
            raise HostError(f"cannot encode the arguments of {self.symbol!r} as eKuiper "
                            f"would: {exc}") from None
        return self.request(raw)

    def validate(self, args: Sequence[Any]) -> FuncReply:
        """Send ``Validate`` with the argument list, as eKuiper does when a rule is created.

        A call with no arguments, ``f()``, sends ``"arg": null``: eKuiper marshals the nil
        Go slice (seen on a real eKuiper).

        Example::

            assert fh.validate(["a"]).state
        """
        return _decode_func_reply(self._call("Validate", list(args) or None))

    def exec(self, *args: Any, rule_id: str = "rule1", op_id: str = "op1",
             instance_id: int = 0, func_id: int = 0) -> FuncReply:
        """Call the function once, as rule ``rule_id`` would; the reply unchecked.

        The arguments are followed by the JSON string
        ``{"ruleId", "opId", "instanceId", "funcId"}``; for an aggregate function each
        argument is a list. Raises :class:`HostError` for a time-out or a reply that is
        not a ``FuncReply``.

        Example::

            assert fh.exec("abc") == FuncReply(True, "cba")
        """
        context = _go_dumps_prepared({"ruleId": rule_id, "opId": op_id,
                                      "instanceId": int(instance_id),
                                      "funcId": int(func_id)}).decode("utf-8")
        return _decode_func_reply(self._call("Exec", [*args, context]))

    def call(self, *args: Any, rule_id: str = "rule1", op_id: str = "op1",
             instance_id: int = 0, func_id: int = 0) -> Any:
        """:meth:`exec` that returns the result, or raises :class:`FunctionError`.

        Example::

            assert fh.call("abc") == "cba"
        """
        reply = self.exec(*args, rule_id=rule_id, op_id=op_id, instance_id=instance_id,
                          func_id=func_id)
        if not reply.state:
            raise FunctionError(reply.result)
        return reply.result

    def is_aggregate(self) -> bool:
        """Ask ``IsAggregate`` once and cache the answer; False on any failure, like Go.

        Example::

            assert not fh.is_aggregate()
        """
        if self._is_agg:
            return self._is_agg > 1
        try:
            reply = _decode_func_reply(self._call("IsAggregate", None))
        except HostError:
            return False
        if not reply.state or not isinstance(reply.result, bool):
            return False
        self._is_agg = 2 if reply.result else 1
        return reply.result

    def _close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._sock.close()


# ---------------------------------------------------------------------------
# A whole pipeline from a plugin folder


def _read_manifest(plugin_dir: Path) -> Tuple[str, Dict[str, Any]]:
    manifests = sorted(plugin_dir.glob("*.json"))
    if len(manifests) != 1:
        found = ", ".join(p.name for p in manifests) or "none"
        raise HostError(f"{plugin_dir} must hold exactly one <name>.json manifest at its root "
                        f"(found: {found})")
    path = manifests[0]
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HostError(f"cannot read manifest {path}: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("executable"), str):
        raise HostError(f"manifest {path} has no \"executable\"")
    return path.stem, manifest


def _pick(manifest: Dict[str, Any], kind: str, wanted: Optional[str]) -> Optional[str]:
    names = manifest.get(kind) or []
    if not isinstance(names, list):
        raise HostError(f"manifest field {kind!r} must be a list of names")
    if wanted is None:
        return names[0] if names else None
    if wanted not in names:
        listed = ", ".join(names) or "none"
        raise HostError(f"{wanted!r} is not in the manifest's {kind} ({listed})")
    return wanted


def _argument_field(message: Dict[str, Any]) -> Optional[str]:
    for key, value in message.items():
        if isinstance(value, str):
            return key
    return next(iter(message), None)


def _one_line(text: str) -> str:
    """The line of an error text that says most: a traceback's last line, else the first."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]


def wait_for(check: Callable[[], object], timeout: float = 5.0,
             what: str = "condition") -> None:
    """Poll ``check`` until it returns something true; ``AssertionError`` after ``timeout``.

    For what a plugin does in its own time (a sink writing a file, a source closing).

    Example::

        wait_for(lambda: out.exists(), 5, "the sink writing its file")
    """
    give_up = time.monotonic() + timeout
    while not check():
        if time.monotonic() > give_up:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.02)


def run_pipeline(plugin_dir: Union[str, "os.PathLike[str]"], *, source: Optional[str] = None,
                 function: Optional[str] = None, sink: Optional[str] = None, count: int = 5,
                 rule_id: Optional[str] = None, datasource: str = "",
                 source_config: Optional[Dict[str, Any]] = None,
                 sink_config: Optional[Dict[str, Any]] = None,
                 env: Optional[Dict[str, str]] = None, out: Optional[IO[str]] = None,
                 timeout: float = 30.0, python: Optional[str] = None) -> List[Dict[str, Any]]:
    """Run a plugin folder's source through its function into its sink, like a small rule.

    Reads the folder's ``<name>.json`` manifest (the only ``*.json`` at its root), starts
    its executable under :class:`PluginHost`, picks the first source, function and sink
    the manifest lists unless named, starts sink, function and source for one unique rule
    id, then for each of ``count`` tuples calls the function on the message's first
    string field (or its first field), stores the result under the function's name, and
    sends the record to the sink as one JSON object (``sendSingle``). One line per step
    goes to ``out`` (default ``sys.stdout``). A source is required; function and sink are
    skipped when the manifest has none. ``python`` is the interpreter that runs the plugin
    (default: this one). Returns the records. Any failure raises :class:`HostError` with a
    one-line message.

    Example::

        records = run_pipeline("plugins/pysam", count=2)
        # source pyjson -> {"name": "pyjson", "value": 2021}
        # revert(name) -> 'nosjyp'
        # sink print <- {"name": "pyjson", "revert": "nosjyp", "value": 2021}
    """
    stream = sys.stdout if out is None else out
    folder = Path(plugin_dir)
    name, manifest = _read_manifest(folder)
    language = manifest.get("language", "python")
    src_name = _pick(manifest, "sources", source)
    func_name = _pick(manifest, "functions", function)
    sink_name = _pick(manifest, "sinks", sink)
    if src_name is None:
        raise HostError(f"plugin {name} declares no source; run_pipeline needs one for data")
    rule = rule_id or f"run{os.getpid()}_{random.getrandbits(32):08x}"
    deadline = time.monotonic() + timeout
    records: List[Dict[str, Any]] = []
    host = PluginHost(name, folder / manifest["executable"], env=env, python=python,
                      init_timeout=min(timeout, 30.0), control_timeout=min(timeout, 30.0),
                      language=language if language in ("python", "go") else "python")
    try:
        host.start()
        sink_handle = None
        if sink_name is not None:
            sink_handle = host.start_sink(sink_name, rule, op_id="sink",
                                          config={"sendSingle": True, **(sink_config or {})})
        func_handle = host.function(func_name) if func_name is not None else None
        src_handle = host.start_source(src_name, rule, op_id="source", datasource=datasource,
                                       config=source_config)
        for _ in range(count):
            item = src_handle.recv(max(0.0, deadline - time.monotonic()))
            record = dict(item.message or {})
            stream.write(f"source {src_name} -> {json.dumps(record, ensure_ascii=False)}\n")
            if func_handle is not None:
                field = _argument_field(record)
                args = [record[field]] if field is not None else []
                result = func_handle.call(*args, rule_id=rule, op_id="project")
                stream.write(f"{func_name}({field or ''}) -> {result!r}\n")
                record[func_name or ""] = result
            if sink_handle is not None:
                sink_handle.send(record)
                stream.write(f"sink {sink_name} <- "
                             f"{go_json_dumps(record).decode('utf-8')}\n")
            stream.flush()
            records.append(record)
        src_handle.stop()
        if sink_handle is not None:
            sink_handle.stop()
    except HostError as exc:
        raise HostError(f"plugin {name}: {_one_line(str(exc)) or type(exc).__name__}") from None
    except (OSError, ValueError, TypeError) as exc:
        raise HostError(f"plugin {name}: {type(exc).__name__}: {exc}") from None
    finally:
        host.close()
    return records


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m ekuiper_sdk.testing run DIR [--count N] [--source S] [--function F] [--sink K]``.

    Example::

        python -m ekuiper_sdk.testing run plugins/pysam --count 3
    """
    parser = argparse.ArgumentParser(prog="python -m ekuiper_sdk.testing",
                                     description="Run portable plugins without eKuiper.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a plugin folder's source -> function -> sink")
    run.add_argument("plugin_dir", help="folder holding <name>.json and the executable")
    run.add_argument("--count", type=int, default=5, help="tuples to take (default 5)")
    run.add_argument("--source", help="source symbol (default: the manifest's first)")
    run.add_argument("--function", help="function symbol (default: the manifest's first)")
    run.add_argument("--sink", help="sink symbol (default: the manifest's first)")
    run.add_argument("--datasource", default="", help="the source's data source")
    run.add_argument("--source-config", type=json.loads, default=None, metavar="JSON")
    run.add_argument("--sink-config", type=json.loads, default=None, metavar="JSON")
    run.add_argument("--timeout", type=float, default=30.0, help="seconds for the whole run")
    run.add_argument("--python", help="interpreter that runs the plugin (default: this one)")
    args = parser.parse_args(argv)
    try:
        run_pipeline(args.plugin_dir, source=args.source, function=args.function,
                     sink=args.sink, count=args.count, datasource=args.datasource,
                     source_config=args.source_config, sink_config=args.sink_config,
                     timeout=args.timeout, python=args.python)
    except HostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
