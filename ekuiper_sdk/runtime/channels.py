"""The plugin's pynng sockets, and nothing else.

One rule holds for every socket here, because closing a pynng socket from one thread
while another is blocked in it can hang (pynng 0.8.1, the version the official SDK
pins): a socket is used and closed by one thread at a time. The source outlet and the
sink inlet have a lock that whoever uses or closes the socket holds; a thread that
waits on one of them waits in an nng aio operation with no timer (:mod:`.nng_aio`), which a
stopper cancels before it takes the lock, so an idle plugin is never woken and ``close``
never waits long; an idle sink's socket waits parked, with no thread, and keeps the lock
for the thread that will take it when a frame comes. The function channels wake up only
every few seconds, the control channel only for a command.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable

import pynng
from pynng.exceptions import check_err

from ..errors import ChannelStopped, SendTimeout
from . import memory, nng_aio, peers, protocol

log = logging.getLogger("ekuiper_sdk")

# The C functions behind pynng's ``Socket.send`` and ``recv`` (``pynng.lib``, as in every
# pynng the SDK supports), called directly on the per-frame paths.
_nng_send: Callable[..., int] = pynng.lib.nng_send
_nng_recv: Callable[..., int] = pynng.lib.nng_recv
_nng_free: Callable[..., None] = pynng.lib.nng_free
_unpack: Callable[..., bytes] = pynng.ffi.unpack
_NONBLOCK: int = pynng.lib.NNG_FLAG_NONBLOCK
_RECV_NOW: int = pynng.lib.NNG_FLAG_ALLOC | pynng.lib.NNG_FLAG_NONBLOCK
_EAGAIN: int = pynng.lib.NNG_EAGAIN

#: nng's thread pools, sized for a plugin: it serves one host over a few local sockets.
#: nng starts two task threads per core (they complete socket operations) and one timer
#: thread per core; more than the minimum contend for nng's locks with each other and
#: with the plugin's threads (docs/performance.md, "nng's threads"). nng never starts
#: fewer than two task threads, whatever is asked.
NNG_THREADS = {"TASK": 2, "EXPIRE": 1, "POLLER": 1, "RESOLVER": 1}
#: ``0`` keeps nng's own sizes (to measure what this is worth).
NNG_THREADS_ENV = "EKUIPER_SDK_NNG_THREADS"


def _size_nng_threads() -> None:
    # Takes effect only before nng starts (the first socket of the process), so it runs
    # when this module is imported; pynng builds without the call are left as they are.
    setter = getattr(pynng.lib, "nng_init_set_parameter", None)
    if setter is None or os.environ.get(NNG_THREADS_ENV, "").strip() == "0":
        return
    for pool, count in NNG_THREADS.items():
        for kind in ("NUM", "MAX"):
            parameter = getattr(pynng.lib, f"NNG_INIT_{kind}_{pool}_THREADS", None)
            if parameter is not None:  # nng has no MAX for resolvers
                setter(parameter, count)


_size_nng_threads()
memory.limit_arenas()  # before the plugin's threads: see memory

#: How long a function channel waits for the host before it sends a keepalive handshake
#: (every host skips it there); the control channel sends none (see ``hosts``).
IDLE_KEEPALIVE_MS = 5000
#: How long to keep dialling a URL the host should already be listening on.
DIAL_DEADLINE_S = 5.0
#: Frames a source may buffer in nng before ``emit`` blocks (the host drains them).
SOURCE_SEND_BUFFER = 1024
#: A stopped sink keeps reading until no frame came for this long, and at most this long.
DRAIN_QUIET_MS = 20
DRAIN_DEADLINE_S = 0.5
#: At most this many frames are taken from nng in one go before the stop flag is checked.
RECV_BATCH = 64
#: How long a sink's thread waits for the next frame before it parks the socket and goes
#: back to the pool: past the gaps inside a burst, once per burst.
LINGER_MS = 25


def receive(sock: pynng.Socket, block: bool = True) -> bytes:
    """``sock.recv()``, except that an empty frame is ``b""`` rather than an error.

    pynng (0.8 and 0.9 alike) cannot unpack a zero-length message (``RuntimeError: cannot
    use unpack() on <cdata 'char *' NULL>``), and the message is gone by then: it was an
    empty frame.
    """
    try:
        return sock.recv(block=block)  # type: ignore[no-any-return]
    except RuntimeError as exc:
        if "NULL" in str(exc):
            return b""
        raise


def dial(sock: pynng.Socket, url: str, deadline_s: float = DIAL_DEADLINE_S,
         what: str = "socket") -> None:
    """Dial ``url``, retrying while the host's listener is not there yet.

    Only a listener of the plugin's own user is ever connected to (:mod:`.peers`): a
    stranger who binds the path while eKuiper is away gets no byte, and the dialer goes
    on redialling until eKuiper is back.
    """
    peers.check_path(url)
    peers.admit_own_user(sock, what)
    give_up = time.monotonic() + deadline_s
    while True:
        try:
            sock.dial(url, block=True)
            return
        except pynng.NNGException as exc:
            if time.monotonic() >= give_up:
                raise ConnectionError(f"cannot connect to {url}: {exc}") from None
            time.sleep(0.05)


def listen_private(sock: pynng.Socket, url: str, what: str = "socket") -> None:
    """Listen on an IPC URL that only this user may connect to (:mod:`.peers`)."""
    peers.listen_private(sock, url, what)


class CommandLink:
    """A socket the plugin dials and serves: it sends ``handshake``, then answers each
    frame it receives with ``handle``'s bytes, until stopped or the socket closes.

    The used-and-closed-by-one-thread rule holds: ``serve``'s thread closes the socket.
    A receive that times out (or another error in ``QUIET``) calls ``_idle``.
    """

    #: Receive errors that only mean nothing came.
    QUIET: tuple[type[Exception], ...] = (pynng.Timeout,)

    def __init__(self, sock: pynng.Socket, url: str,
                 dial_deadline_s: float = DIAL_DEADLINE_S, what: str = "channel") -> None:
        self.url = url
        self._sock = sock
        self._closing = False
        try:
            dial(self._sock, url, dial_deadline_s, what)
        except BaseException:
            self._sock.close()
            raise

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on an nng thread) when the connection to the peer drops.

        The peer keeps its end open for as long as it lives, so a dropped connection
        means the peer is gone, whichever way it went and whoever the plugin's parent is.
        """
        def removed(_pipe: object) -> None:
            if not self._closing:  # closing our own socket removes the pipe too
                callback()

        self._sock.add_post_pipe_remove_cb(removed)

    def serve(self, handle: Callable[[bytes], bytes], stopped: threading.Event) -> None:
        """Answer requests with ``handle`` until ``stopped`` is set or the socket fails."""
        sock = self._sock
        try:
            sock.send(protocol.HANDSHAKE)
            while not stopped.is_set():
                try:
                    request = receive(sock)
                except self.QUIET:
                    self._idle(sock)
                    continue
                sock.send(handle(request))
        except (pynng.Closed, pynng.ConnectionReset):
            pass  # closed here, or the peer went away while a request waited for it
        finally:
            self._closing = True
            sock.close()

    def _idle(self, sock: pynng.Socket) -> None:
        """Nothing came within the receive timeout: by default, wait again."""


class InvertedReplier(CommandLink):
    """The plugin's side of the control and function channels: a REQ socket that serves.

    The host listens with REP and answers the plugin's requests with commands, so the
    plugin sends ``handshake``, receives a command as the "reply", and sends its answer
    as the next request. With ``idle_ms``, when the host is quiet that long the plugin
    sends ``handshake`` again, which the host reads as a keepalive; with ``None`` it
    waits for the next command however long it takes, and sends nothing unasked (a host
    before 2.1.3 would read a queued keepalive as the answer to its next command).
    """

    QUIET = (pynng.Timeout, pynng.BadState)

    def __init__(self, url: str, idle_ms: int | None = IDLE_KEEPALIVE_MS,
                 dial_deadline_s: float = DIAL_DEADLINE_S, what: str = "channel") -> None:
        # nng's own resend would replay an old answer that the host could read as the
        # answer to its next command; the idle handshake, where used, does that job.
        options: dict[str, int] = {"resend_time": 0, "recv_max_size": 0}
        if idle_ms is not None:
            options["recv_timeout"] = idle_ms
        super().__init__(pynng.Req0(**options), url, dial_deadline_s, what)

    def _idle(self, sock: pynng.Socket) -> None:
        # The REQ socket dropped its request: make a new one.
        sock.send(protocol.HANDSHAKE)


class Outlet:
    """A PUSH socket shared by user threads (``send``) and the stopper (``close``).

    Sends go under a lock; a send that finds nng's buffers full waits in an aio send
    that ``close`` cancels before it takes the lock, so ``close`` never closes the
    socket while a send is inside it and never waits for the host. Used for a source's
    tuples and a sink's acks.
    """

    def __init__(self, url: str, send_timeout_ms: int, what: str, buffer: int = 0,
                 label: str = "") -> None:
        self.url = url
        self.what = what
        self._timeout_s = send_timeout_ms / 1000.0
        self._lock = threading.Lock()
        self._closed = False
        self._closing = False
        self._timeout_ms = send_timeout_ms
        self._sock = pynng.Push0(send_buffer_size=buffer)
        try:
            dial(self._sock, url, what=label or what)
        except BaseException:
            self._sock.close()
            raise
        self._handle = self._sock.socket  # the nng socket behind it, for the direct send
        self._waiter = nng_aio.Waiter(self._sock)

    def send(self, frame: bytes) -> None:
        """Send one frame, waiting up to the send timeout while the host does not read."""
        with self._lock:
            if self._closing:
                raise ChannelStopped(f"the {self.what} was stopped")
            # The first try calls nng directly, as pynng's own send does, minus its
            # checks and wrappers: a third of the per-tuple Python work
            # (docs/performance.md). The socket is open: closing takes this lock.
            err = _nng_send(self._handle, frame, len(frame), _NONBLOCK)
            if not err:
                return
            if err != _EAGAIN:
                check_err(err)
            self._wait_and_send(frame)

    def _wait_and_send(self, frame: bytes) -> None:
        """Wait for room (the lock is held); the host does not read fast enough."""
        try:
            if self._waiter.send(frame, self._timeout_ms):
                return
        except pynng.Timeout:
            raise SendTimeout(f"eKuiper did not read the {self.what}'s data for "
                              f"{self._timeout_s:g} s (sendTimeout)") from None
        raise ChannelStopped(f"the {self.what} was stopped")

    def close(self) -> None:
        # Python locks are not fair: a sender looping on blocked slices can take the lock
        # again before this thread wakes up, and stops took up to 90 ms. The flag makes
        # the sender give the lock up after its current send.
        self._closing = True
        nng_aio.cancel_until(self._lock, self._waiter)
        try:
            if not self._closed:
                self._closed = True
                self._sock.close()
        finally:
            self._lock.release()


class SinkInlet:
    """A sink instance's PULL socket: listens before the start is answered.

    One thread at a time uses it: the holder of ``lock``, who also closes it. While frames
    come, the holder takes them in batches (:meth:`take`); once none came for
    ``LINGER_MS`` it parks the socket (:meth:`park`): the lock stays taken, on behalf of
    a receive that waits with no thread (:class:`.nng_aio.ParkedReceive`), and
    ``on_wake`` runs on an nng thread when it ends; the thread that then takes the socket
    over (and the lock with it) reads :meth:`woken` first. Another thread takes the socket
    with :meth:`seize`, which ends either wait.
    """

    def __init__(self, url: str, on_wake: Callable[[], None] = lambda: None) -> None:
        self.url = url
        self.lock = threading.Lock()
        self.closed = False
        self._sock = pynng.Pull0(recv_max_size=0)
        self._waiter = nng_aio.Waiter(self._sock)
        self._parked = nng_aio.ParkedReceive(self._sock, on_wake)
        self._data = pynng.ffi.new("char **")
        self._size = pynng.ffi.new("size_t *")
        try:
            listen_private(self._sock, url, "sink's data socket")
        except BaseException:
            self._sock.close()
            raise

    def take(self, linger: bool = True) -> list[bytes] | None:
        """The next frames, in order; ``None`` when none came for ``LINGER_MS`` (or, with
        ``linger`` false, when none is there now).

        Call with ``lock`` held. Returns no frames when :meth:`seize` ended the wait. The
        frames already there cost no wait; the linger keeps a busy socket on its thread
        between two frames, at the cost of one timer per wait, never a periodic one.
        """
        batch = self._queued([])
        if batch or not linger:
            return batch or None
        try:
            frame = self._waiter.receive(LINGER_MS)
        except pynng.Timeout:
            return None
        return [] if frame is None else self._queued([frame])

    def park(self) -> None:
        """Give the socket to a receive with no thread; ``lock`` stays taken for it."""
        self._parked.start()

    def woken(self) -> list[bytes] | None:
        """After ``on_wake``, with ``lock`` now the caller's: the frames that came, in
        order; ``None`` when :meth:`seize` ended the wait."""
        frame = self._parked.result()
        return None if frame is None else self._queued([frame])

    def seize(self) -> None:
        """Take ``lock`` from any thread, ending a reader's wait; release it when done."""
        nng_aio.cancel_until(self.lock, self)

    def cancel(self) -> None:
        """End the current wait for frames, parked or not (any thread)."""
        self._parked.cancel()
        self._waiter.cancel()

    def finish(self) -> list[bytes]:
        """Take the frames still on their way, then close. Call with ``lock`` held."""
        try:
            return self._drain()
        except pynng.Closed:
            return []
        finally:
            self.closed = True
            self._sock.close()

    def close(self) -> None:
        """Close a socket that no thread reads yet (a start that failed half way)."""
        with self.lock:
            self.closed = True
            self._sock.close()

    def _queued(self, batch: list[bytes]) -> list[bytes]:
        """Add the frames nng already holds to ``batch``, without waiting.

        A blocking receive with a timeout costs nng a timer per call; frames that are
        already there are taken with non-blocking calls straight to nng, which return a
        code rather than raise when nothing is left (docs/performance.md).
        """
        handle, data, size = self._sock.socket, self._data, self._size
        while len(batch) < RECV_BATCH and not _nng_recv(handle, data, size, _RECV_NOW):
            # An empty frame comes as a NULL pointer, which unpack refuses (see receive).
            batch.append(_unpack(data[0], size[0]) if size[0] else b"")
            _nng_free(data[0], size[0])
        return batch

    def _drain(self) -> list[bytes]:
        # The host closes its side just before it sends stop; frames it wrote may still be
        # on their way through nng's pipe reader, so wait until the pipe has been quiet
        # for a moment (bounded) rather than taking only what is queued this instant.
        left: list[bytes] = []
        self._sock.recv_timeout = DRAIN_QUIET_MS
        give_up = time.monotonic() + DRAIN_DEADLINE_S
        while time.monotonic() < give_up:
            try:
                left.append(receive(self._sock))
            except (pynng.TryAgain, pynng.Timeout):
                break
        return left

