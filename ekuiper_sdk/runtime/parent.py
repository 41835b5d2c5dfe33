"""Noticing that the process that started the plugin (eKuiper) is gone, without polling."""

from __future__ import annotations

import os
import select
import threading
from typing import Callable

#: Where the kernel cannot tell us (no pidfd: not Linux, Linux < 5.3, Python < 3.9),
#: how often to look whether the parent changed. The control channel's disconnect
#: notices a dead host first in practice; this is the second line.
POLL_S = 1.0


def watch_parent(on_gone: Callable[[int], None], parent: int | None = None) -> None:
    """Call ``on_gone(parent_pid)`` from a daemon thread once the parent process exits.

    Waits on a pidfd where the kernel has them, which wakes the process only when the
    parent exits; otherwise checks ``os.getppid()`` every ``POLL_S``.

    >>> watch_parent(lambda pid: print("host", pid, "is gone"))  # doctest: +SKIP
    """
    pid = os.getppid() if parent is None else parent
    threading.Thread(target=_watch, args=(pid, on_gone), name="parent watch",
                     daemon=True).start()


def _watch(parent: int, on_gone: Callable[[int], None]) -> None:
    fd = _open_pidfd(parent)
    if fd is not None:
        try:
            # A pidfd polls readable when the process exits (even by SIGKILL). Checked
            # after opening too: a parent that died just before would be a reused pid.
            if os.getppid() == parent:
                poller = select.poll()
                poller.register(fd, select.POLLIN)
                while not poller.poll():
                    pass
        finally:
            os.close(fd)
    else:
        stop = threading.Event()
        while os.getppid() == parent:
            stop.wait(POLL_S)
    on_gone(parent)


def _open_pidfd(pid: int) -> int | None:
    opener = getattr(os, "pidfd_open", None)
    if opener is None or pid <= 1:
        return None
    try:
        fd: int = opener(pid)
    except OSError:
        return None
    return fd
