"""The host's sockets, with the Go host's time limits and its listen and reply rules.

Every socket here is used and closed by one thread at a time, as in the plugin runtime
(docs/reliability.md): a reader thread owns its socket and closes it itself.
"""

from __future__ import annotations

import time
from typing import (
    Callable,
)

import pynng

from ..errors import HostError

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
TICK = 0.1


def ipc_url(stem: str) -> str:
    return f"ipc:///tmp/{stem}.ipc"


def ipc_path(url: str) -> str:
    return url[len("ipc://"):]


def listen(sock: pynng.Socket, url: str) -> None:
    """Listen like the Go host: five more tries 100 ms apart (a closing listener may linger).

    nng itself replaces a stale socket file (it connects first, and removes the file only
    when nobody answers); a live listener there is a :class:`HostError` naming the file.
    """
    sock.recv_max_size = 0      # eKuiper sets no size limit; nng's default is 1 MiB
    for attempt in range(6):
        try:
            sock.listen(url)
            return
        except pynng.NNGException as exc:
            if attempt == 5:
                if isinstance(exc, pynng.AddressInUse):
                    # eKuiper's own words first ("address in use", from its socket
                    # library), then who can hold the file and what to do.
                    raise HostError(f"address in use: {ipc_path(url)} is held by a live "
                                    "listener (an eKuiper or another test host using the "
                                    "same name); stop that one or use another name") from None
                raise HostError(f"cannot listen at {url}: {exc}") from None
            time.sleep(0.1)


class RecvTimeout(Exception):
    pass


def recv_within(sock: pynng.Socket, timeout: float,
                 abort: Callable[[], str | None] | None = None) -> bytes:
    """Receive one message within ``timeout`` seconds.

    The wait is cut into short receives so that ``abort`` (which returns a reason to give
    up, or None) is looked at often; a receive that times out loses nothing on an nng
    socket, so this is the same as one long receive.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RecvTimeout()
        sock.recv_timeout = max(1, int(min(TICK, left) * 1000))
        try:
            return bytes(sock.recv())
        except pynng.Timeout:
            reason = abort() if abort is not None else None
            if reason:
                raise HostError(reason) from None


def send_rep(sock: pynng.Socket, raw: bytes, timeout: float,
              abort: Callable[[], str | None]) -> None:
    """Reply on a REP socket, first taking and dropping a request if none is held.

    That is the Go host's ErrProtoState recovery: after a plugin restart or a receive
    that timed out, the socket holds no request to reply to.
    """
    try:
        sock.send(raw)
    except pynng.BadState:
        recv_within(sock, timeout, abort)
        sock.send(raw)


def shortened(data: bytes, limit: int = 300) -> str:
    text = data.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + "..."
