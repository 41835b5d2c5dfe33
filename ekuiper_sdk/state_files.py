"""The files behind ``ctx.state``: a lock per store, and no temporary file left behind.

A store is rewritten through a temporary file (``<store>.<pid>.<thread>.tmp``) renamed
over the old one. A process killed between the two leaves the temporary file; in a
crash loop they would fill eKuiper's data folder, so the first store a process opens in
a folder removes every temporary file there whose writer is dead.

Two writers of one store (two processes, or a symbol's instance whose ``open`` still
runs when its replacement starts) take ``<store>.lock`` with ``flock`` around each
write, read what the other wrote, and merge their own changes into it key by key:
neither loses the other's keys.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

TMP_SUFFIX = ".tmp"
LOCK_SUFFIX = ".lock"

_swept: set[str] = set()
_swept_lock = threading.Lock()


def temp_path(path: str) -> str:
    """The temporary file one thread of this process writes ``path`` through."""
    return f"{path}.{os.getpid()}.{threading.get_ident()}{TMP_SUFFIX}"


def _writer_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # ours: a write in progress on another thread
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def sweep_stale_temps(folder: str) -> int:
    """Remove the temporary files in ``folder`` left by dead writers, once per process.

    Returns how many were removed. A pid that was reused since keeps its file until a
    later sweep finds it dead: never a live writer's file is taken.
    """
    with _swept_lock:
        if folder in _swept:
            return 0
        _swept.add(folder)
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    removed = 0
    for name in names:
        if not name.endswith(TMP_SUFFIX):
            continue
        parts = name[:-len(TMP_SUFFIX)].rsplit(".", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        if _writer_alive(int(parts[1])):
            continue
        try:
            os.unlink(os.path.join(folder, name))
            removed += 1
        except OSError:
            pass
    return removed


def signature(path: str) -> tuple[int, int, int] | None:
    """What tells one version of a file from another: inode, size, change time."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


@contextmanager
def locked(path: str) -> Iterator[None]:
    """Hold ``<path>.lock`` exclusively (against other processes and other stores)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path + LOCK_SUFFIX, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
