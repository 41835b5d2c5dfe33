"""Waiting on an nng socket with no timer: one receive or send that another thread cancels.

A blocking receive with a short time-out wakes the plugin, and two nng timer threads,
many times a second while nothing happens (docs/performance.md, "Idle"). An nng aio
operation with no time-out waits without waking anyone, costs per frame what a
blocking receive costs, and ends at once when another thread cancels it; the socket
itself stays with the one thread that waits on it.

A cancel that comes before the operation is started, or between two operations, is
lost, so whoever stops a waiter cancels again until the waiter has let go
(:func:`cancel_until`).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Protocol

import pynng
from pynng.exceptions import check_err

_lib: Any = pynng.lib
_ffi: Any = pynng.ffi

#: nng's "wait for ever" (NNG_DURATION_INFINITE, which pynng does not export).
FOREVER_MS = -1
#: How often a stopper repeats its cancel while the waiter has not let go.
CANCEL_RETRY_S = 0.01

class Waiter:
    """One aio handle for one socket, used by the thread that owns the socket.

    >>> import pynng
    >>> pull = pynng.Pull0(); _ = pull.listen("inproc://aio-doc")
    >>> push = pynng.Push0(); _ = push.dial("inproc://aio-doc"); push.send(b"hi")
    >>> Waiter(pull).receive()
    b'hi'
    """

    def __init__(self, sock: pynng.Socket) -> None:
        self._handle = sock.socket
        holder = _ffi.new("nng_aio **")
        check_err(_lib.nng_aio_alloc(holder, _ffi.NULL, _ffi.NULL))
        self._aio = holder[0]
        self._timeout = FOREVER_MS
        _lib.nng_aio_set_timeout(self._aio, FOREVER_MS)

    def receive(self, timeout_ms: int = FOREVER_MS) -> bytes | None:
        """Wait for one frame; ``None`` when :meth:`cancel` ended the wait.

        Raises ``pynng.Timeout`` when ``timeout_ms`` ran out, ``pynng.Closed`` (or another
        pynng error) when the socket fails.
        """
        aio = self._aio
        self._set_timeout(timeout_ms)
        _lib.nng_recv_aio(self._handle, aio)
        _lib.nng_aio_wait(aio)  # cffi lets go of the GIL while nng waits
        return _received(aio)

    def send(self, frame: bytes, timeout_ms: int) -> bool:
        """Send one frame, waiting up to ``timeout_ms`` for room.

        Returns ``False`` when :meth:`cancel` ended the wait; raises ``pynng.Timeout``
        when the time ran out, and other pynng errors as pynng would.
        """
        holder = _ffi.new("nng_msg **")
        check_err(_lib.nng_msg_alloc(holder, 0))
        msg = holder[0]
        err = _lib.nng_msg_append(msg, frame, len(frame))
        if err:
            _lib.nng_msg_free(msg)
            check_err(err)
        aio = self._aio
        self._set_timeout(timeout_ms)
        _lib.nng_aio_set_msg(aio, msg)
        _lib.nng_send_aio(self._handle, aio)
        _lib.nng_aio_wait(aio)
        err = _lib.nng_aio_result(aio)
        if err:
            _lib.nng_msg_free(msg)  # nng hands a message it did not send back to its caller
            if err == _lib.NNG_ECANCELED:
                return False
            check_err(err)
        return True

    def cancel(self) -> None:
        """End the current wait (any thread); lost if no wait is in progress."""
        _lib.nng_aio_cancel(self._aio)

    def __del__(self) -> None:
        # Only when nothing refers to the waiter any more, so no thread can still cancel
        # it: a stopper may keep cancelling after the owner closed the socket.
        _lib.nng_aio_free(self._aio)

    def _set_timeout(self, timeout_ms: int) -> None:
        if timeout_ms != self._timeout:
            self._timeout = timeout_ms
            _lib.nng_aio_set_timeout(self._aio, timeout_ms)


def _received(aio: Any) -> bytes | None:
    """The frame a finished receive got; ``None`` when it was cancelled."""
    err = _lib.nng_aio_result(aio)
    if err == _lib.NNG_ECANCELED:
        return None
    check_err(err)
    msg = _lib.nng_aio_get_msg(aio)
    size = _lib.nng_msg_len(msg)
    frame: bytes = _ffi.unpack(_ffi.cast("char *", _lib.nng_msg_body(msg)), size) \
        if size else b""
    _lib.nng_msg_free(msg)
    return frame


def _on_completion(arg: Any) -> None:
    # On one of nng's task threads, with no nng lock held: only hand the news on.
    _ffi.from_handle(arg)()


#: The C callback every parked receive completes through (its argument names the waiter).
_completed: Any = _ffi.callback("void(void *)", _on_completion)


class ParkedReceive:
    """A receive that waits with no thread: nng calls ``on_done`` when it has finished.

    The thread that holds the socket starts it (:meth:`start`) and gives the socket up to
    it; ``on_done`` runs on one of nng's own threads when a frame came, the receive was
    cancelled or the socket failed, and must only hand the work on (it may not block).
    Whoever then takes the socket back reads :meth:`result` first.

    >>> import pynng, threading
    >>> pull = pynng.Pull0(); _ = pull.listen("inproc://parked-doc")
    >>> push = pynng.Push0(); _ = push.dial("inproc://parked-doc")
    >>> came = threading.Event(); parked = ParkedReceive(pull, came.set); parked.start()
    >>> push.send(b"hi"); came.wait(5), parked.result()
    (True, b'hi')
    """

    def __init__(self, sock: pynng.Socket, on_done: Callable[[], None]) -> None:
        self._handle = sock.socket
        # Kept here: nng holds only the pointer, and the callback looks the object up.
        self._on_done = _ffi.new_handle(on_done)
        holder = _ffi.new("nng_aio **")
        check_err(_lib.nng_aio_alloc(holder, _completed, self._on_done))
        self._aio = holder[0]
        _lib.nng_aio_set_timeout(self._aio, FOREVER_MS)

    def start(self) -> None:
        """Start waiting for one frame; returns at once."""
        _lib.nng_recv_aio(self._handle, self._aio)

    def result(self) -> bytes | None:
        """After ``on_done``: the frame, or ``None`` when :meth:`cancel` ended the wait."""
        return _received(self._aio)

    def cancel(self) -> None:
        """End the wait (any thread; ``on_done`` still runs); lost if none is in progress."""
        _lib.nng_aio_cancel(self._aio)

    def __del__(self) -> None:
        # Frees only an aio whose callback is not running: a running one holds a reference.
        _lib.nng_aio_free(self._aio)


class Cancellable(Protocol):
    """A wait that another thread can end."""

    def cancel(self) -> None: ...


def cancel_until(lock: threading.Lock, waiter: Cancellable) -> None:
    """Take ``lock`` from a thread that may be waiting in ``waiter`` while holding it.

    The cancel is repeated until the lock comes free, since one that lands between two
    waits is lost.

    >>> import pynng, threading
    >>> lock = threading.Lock(); w = Waiter(pynng.Pull0())
    >>> cancel_until(lock, w); lock.locked()
    True
    """
    while not lock.acquire(blocking=False):
        waiter.cancel()
        if lock.acquire(timeout=CANCEL_RETRY_S):
            return
