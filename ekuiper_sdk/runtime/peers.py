"""Only the plugin's own user is ever served, on every socket it listens on or dials.

IPC paths live in ``/tmp``, where any local user may create a file, and a listener's file
takes the mode the umask gives it. So two checks hold for every socket:

* a connection whose peer has another uid is closed in nng's pipe callback, which runs
  once per connection *before* the pipe joins the socket: not a byte is read from it or
  written to it (a source never sends records to a stranger who bound the path after
  eKuiper closed it; a sink never collects a stranger's frames);
* a listener's file gets mode 0600 from nng (``ipc:permissions``) between ``bind`` and
  ``listen``: the listener is created, given its permissions, then started, so there is
  no moment at which another user can connect.

eKuiper starts its plugins, so host and plugin share a uid and nothing eKuiper sees
changes. The check costs one option read per connection, nothing per frame.
"""

from __future__ import annotations

import logging
import os

import pynng

from . import protocol
from .log_limit import LogLimiter

log = logging.getLogger("ekuiper_sdk")
_refusals = LogLimiter(log)

#: The mode of every socket file the plugin listens on.
SOCKET_MODE = 0o600
#: The longest path a Unix socket may have (``sun_path`` holds 108 bytes with its NUL).
MAX_PATH_BYTES = 107

_OWN_UID = os.getuid()
_ENOTSUP: int = pynng.lib.NNG_ENOTSUP


def _peer_id(pipe: pynng.Pipe, option: bytes) -> int | None:
    """The peer's uid or pid (``ipc:peer-uid``, ``ipc:peer-pid``), or None when not IPC."""
    value = pynng.ffi.new("uint64_t *")
    err = pynng.lib.nng_pipe_get_uint64(pipe.pipe, option, value)
    if err == _ENOTSUP:
        return None
    if err:
        return -1  # IPC, but nng cannot tell: treated as a stranger
    return int(value[0])


def peer_pid(pipe: pynng.Pipe) -> int | None:
    """The pid of the process at the other end of an IPC pipe, when nng can tell."""
    pid = _peer_id(pipe, b"ipc:peer-pid")
    return None if pid is None or pid < 0 else pid


def admit_own_user(sock: pynng.Socket, what: str) -> None:
    """Close, before it is used, every connection of ``sock`` from another user.

    Call before the socket listens or dials. ``what`` names the socket in the log line.
    A non-IPC transport (``inproc``, ``tcp``: tests only) has no peer uid and is let be.
    """
    def admit(pipe: pynng.Pipe) -> None:  # on an nng thread, once per connection
        uid = _peer_id(pipe, b"ipc:peer-uid")
        if uid is None or uid == _OWN_UID:
            return
        pid = peer_pid(pipe)
        pipe.close()
        _refusals.warning(
            (what, uid), "refused a connection to the %s from uid %s (pid %s): only the "
            "plugin's own user (uid %d) is served", what, uid if uid >= 0 else "unknown",
            pid or "unknown", _OWN_UID)

    sock.add_pre_pipe_connect_cb(admit)


def check_path(url: str) -> None:
    """Refuse an IPC URL whose path the OS cannot bind or connect to, saying why."""
    if not url.startswith("ipc://"):
        return
    path = protocol.url_path(url)
    size = len(os.fsencode(path))
    if size > MAX_PATH_BYTES:
        raise ValueError(
            f"the socket path {path} is {size} bytes long, more than the {MAX_PATH_BYTES} "
            "a Unix socket allows: use shorter rule, operator or symbol names")


def listen_private(sock: pynng.Socket, url: str, what: str = "socket") -> None:
    """Listen on ``url`` serving only this user, its file mode 0600 before any accept.

    nng replaces a file left by a killed plugin itself (it connects first and removes
    the file only when nobody answers), so a live listener's file is never taken.
    """
    check_path(url)
    admit_own_user(sock, what)
    listen_mode_first(sock, url)


def listen_mode_first(sock: pynng.Socket, url: str) -> None:
    """Listen on ``url`` with its file made mode 0600 between ``bind`` and ``listen``.

    Add the socket's pipe callbacks before: the listener accepts as soon as it starts.
    """
    check_path(url)
    lib, ffi = pynng.lib, pynng.ffi
    listener = ffi.new("nng_listener *")
    pynng.exceptions.check_err(lib.nng_listener_create(listener, sock.socket, url.encode()))
    try:
        if url.startswith("ipc://"):  # abstract sockets have no file to protect
            pynng.exceptions.check_err(
                lib.nng_listener_set_int(listener[0], b"ipc:permissions", SOCKET_MODE))
        pynng.exceptions.check_err(lib.nng_listener_start(listener[0], 0))
    except BaseException:
        lib.nng_listener_close(listener[0])
        raise
    # Known to pynng as if it had made it, so its bookkeeping (sock.listeners) holds.
    py_listener = pynng.nng.Listener(listener, sock)
    sock._listeners[lib.nng_listener_id(listener[0])] = py_listener
