"""The handles of running symbols: a source's tuples, a sink's frames and acks, a
function's calls, each over the sockets the Go host would use."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from typing import (
    Any,
    Protocol,
)

import pynng

from ..errors import FunctionError, HostError, InvalidFrameError, SinkAckError
from ..hosts import HostGeneration
from .gojson import (
    FuncReply,
    SourceTuple,
    decode_ack,
    decode_func_reply,
    decode_source_frame,
    go_dumps_prepared,
    go_json_dumps,
    go_sprint,
    go_value,
)
from .sockets import (
    ACK_RECV_TIMEOUT,
    SINK_SEND_TIMEOUT,
    TICK,
    RecvTimeout,
    recv_within,
    send_rep,
)


class HandleOwner(Protocol):
    """What a handle needs of the host that started it (:class:`~.host.PluginHost`)."""

    name: str
    generation: HostGeneration

    def output_tail(self, lines: int = ...) -> str: ...

    def send_control(self, cmd: str, control: dict[str, Any], timeout: float | None) -> None: ...

    def dead_reason(self) -> str | None: ...

    def forget(self, handle: object) -> None: ...


def _label(control: dict[str, Any]) -> str:
    meta = control["meta"]
    return (f"{control['pluginType']} {control['symbolName']!r} (rule {meta['ruleId']!r}, "
            f"op {meta['opId']!r}, instance {meta['instanceId']})")


class SourceHandle:
    """A running source instance: its tuples arrive in a queue filled by a reader thread.

    The reader thread is the only user of the PULL socket and closes it itself, so a stop
    never closes a socket another thread is receiving on.
    """

    def __init__(self, host: HandleOwner, control: dict[str, Any], sock: pynng.Socket, url: str,
                 buffer_length: int) -> None:
        self.host = host
        self.control = control
        self.symbol: str = control["symbolName"]
        self.url = url
        self._sock = sock
        self._queue: queue.Queue[SourceTuple | InvalidFrameError] = queue.Queue(
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
            sock.recv_timeout = int(TICK * 1000)
            while not self._stop.is_set():
                if not self._reading.is_set():
                    self._reading.wait(TICK)
                    continue
                try:
                    raw = bytes(sock.recv())
                except pynng.Timeout:
                    continue
                except pynng.NNGException:
                    break
                self.frames += 1
                item: SourceTuple | InvalidFrameError
                try:
                    item = decode_source_frame(raw)
                except InvalidFrameError as exc:
                    item = exc
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=TICK)
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
            raise HostError(f"no tuple from {_label(self.control)} within {timeout:g}s; "
                            f"plugin output:\n{self.host.output_tail()}") from None
        if isinstance(item, InvalidFrameError):
            raise item
        return item

    def take(self, n: int, timeout: float = 5.0) -> list[SourceTuple]:
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

    def stop(self, timeout: float | None = None) -> None:
        """Close the PULL socket, then send ``stop``, as eKuiper does when the rule stops.

        Raises :class:`HostError` when the plugin's answer is not ``ok``. Tuples already
        queued can still be read with :meth:`recv`. Calling it again does nothing.

        Example::

            src.stop()
        """
        if self._stopped:
            return
        self.detach()
        self.host.send_control("stop", self.control, timeout)

    def detach(self) -> None:
        self._stopped = True
        self._stop.set()
        self._reading.set()
        self._thread.join()
        self.host.forget(self)


def _encode_sink_data(data: bytes | bytearray | dict[str, Any] | list[Any]) -> bytes:
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

    def __init__(self, host: HandleOwner, control: dict[str, Any], push: pynng.Socket,
                 ack: pynng.Socket, require_ack: bool, url: str, ack_url: str,
                 close_ack: bool = True) -> None:
        self.host = host
        self._close_ack = close_ack  # a 1.x host leaves it open (testing/generation.py)
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

    def send(self, data: bytes | bytearray | dict[str, Any] | list[Any], *,
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
                raise HostError(f"{_label(self.control)} is stopped")
            try:
                self._push.send(payload)
            except pynng.Timeout:
                raise HostError(f"io error: send to {_label(self.control)} timed out after "
                                f"{SINK_SEND_TIMEOUT:g}s") from None
            if self.require_ack:
                _, error = decode_ack(self._recv_ack_locked(ack_timeout))
                if error:
                    raise SinkAckError(error)

    def send_rows(self, rows: Sequence[dict[str, Any]], *, ack_timeout: float = 10.0) -> int:
        """Send rows framed as a real eKuiper frames them for this sink's config; return
        the number of frames sent.

        Seen on a real eKuiper v2: with ``batchSize`` or ``lingerInterval`` the rows go as
        one frame, ``[{...}, {...}]`` with ``sendSingle`` and ``[[{...}], [{...}]]``
        without; with neither, ``sendSingle`` sends each row as a frame of its own and the
        default sends the rows as one array (a window's output). Seen on v1.14.7: a batch
        is framed as if there were none (``HostGeneration.frames_batches``).

        Example::

            sink.send_rows([{"n": 1}, {"n": 2}])
        """
        config = {str(k).casefold(): v for k, v in (self.control.get("config") or {}).items()}
        single = config.get("sendsingle") is True
        batched = self.host.generation.frames_batches and (
            bool(config.get("batchsize")) or bool(config.get("lingerinterval")))
        frames: list[Any]
        if batched:
            frames = [list(rows) if single else [[row] for row in rows]]
        else:
            frames = list(rows) if single else [list(rows)]
        for frame in frames:
            self.send(frame, ack_timeout=ack_timeout)
        return len(frames)

    def recv_ack(self, timeout: float = 5.0) -> dict[str, Any]:
        """Read one ack frame and return it decoded (``{}`` or ``{"error": ...}``).

        Useful without ``requireAck``, when eKuiper would leave acks unread.

        Example::

            assert sink.recv_ack() == {}
        """
        with self._lock:
            if self._stopped:
                raise HostError(f"{_label(self.control)} is stopped")
            value, _ = decode_ack(self._recv_ack_locked(timeout))
            return value

    def _recv_ack_locked(self, timeout: float) -> bytes:
        # eKuiper receives with a 1 s deadline in a loop until the rule stops.
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HostError(f"no ack from {_label(self.control)} within {timeout:g}s")
            try:
                return recv_within(self._ack, min(ACK_RECV_TIMEOUT, left), self._abort)
            except RecvTimeout:
                continue

    def _abort(self) -> str | None:
        if self._stopping:
            return f"{_label(self.control)} is stopping"
        return self.host.dead_reason()

    def stop(self, timeout: float | None = None) -> None:
        """Close the data and ack sockets, then send ``stop``, as eKuiper does.

        Raises :class:`HostError` when the plugin's answer is not ``ok``. Calling it again
        does nothing.

        Example::

            sink.stop()
        """
        if self._stopped:
            return
        self.detach()
        self.host.send_control("stop", self.control, timeout)

    def detach(self) -> None:
        self._stopping = True   # a send waiting for an ack gives up within a tick
        with self._lock:
            if not self._stopped:
                self._stopped = True
                self._push.close()
                if self._close_ack:
                    self._ack.close()
        self.host.forget(self)


class FunctionHandle:
    """A function's channel: the host's REP socket at ``ipc:///tmp/func_<symbol>.ipc``.

    Calls are sent one at a time under a lock, like the Go host's; the plugin's first
    request (its handshake) is taken and dropped by the first call.
    """

    def __init__(self, host: HandleOwner, symbol: str, sock: pynng.Socket, url: str,
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
                    send_rep(self._sock, raw, self.timeout, self.host.dead_reason)
                    reply = recv_within(self._sock, self.timeout, self.host.dead_reason)
                except RecvTimeout:
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
            raw = go_dumps_prepared({"func": name, "arg": go_value(arg)})
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
        return decode_func_reply(self._call("Validate", list(args) or None))

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
        context = go_dumps_prepared({"ruleId": rule_id, "opId": op_id,
                                      "instanceId": int(instance_id),
                                      "funcId": int(func_id)}).decode("utf-8")
        return decode_func_reply(self._call("Exec", [*args, context]))

    def call(self, *args: Any, rule_id: str = "rule1", op_id: str = "op1",
             instance_id: int = 0, func_id: int = 0) -> Any:
        """:meth:`exec` that returns the result, or raises :class:`FunctionError`.

        Example::

            assert fh.call("abc") == "cba"
        """
        reply = self.exec(*args, rule_id=rule_id, op_id=op_id, instance_id=instance_id,
                          func_id=func_id)
        if not reply.state:
            raise FunctionError(go_sprint(reply.result), reply.result)
        return reply.result

    def is_aggregate(self) -> bool:
        """Ask ``IsAggregate`` once and cache the answer; False on any failure, like Go.

        Example::

            assert not fh.is_aggregate()
        """
        if self._is_agg:
            return self._is_agg > 1
        try:
            reply = decode_func_reply(self._call("IsAggregate", None))
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

