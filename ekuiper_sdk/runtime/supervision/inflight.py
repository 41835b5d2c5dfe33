"""The function call each function is running, shared between a worker and its supervisor.

A call that kills the worker (native code that segfaults on one input) would kill every
worker after it: eKuiper sends a pending call again to whoever joins its function socket
next (seen on a real eKuiper: each new worker got the same call until eKuiper gave up on
it). So before running a request, the worker writes its length and CRC-32 into its slot
of a small shared file, and clears the slot afterwards; when the worker dies the
supervisor reads the slots, and every later worker answers that exact request (same
arguments, same call site) with an error instead of running it: seen on a real eKuiper, a
source that re-sends the record after a restart brings the same call again. The cost is a
CRC and two 8-byte writes per call.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import zlib
from typing import Any, Callable

from .. import protocol

#: Set in a worker's environment: the descriptor of the shared file of call slots (the file
#: is unlinked at once, so a supervisor killed by SIGKILL leaves nothing behind).
CALLS_ENV = "EKUIPER_SDK_WORKER_CALLS"
#: Set in a worker's environment: JSON {function: [[length, crc, why], ...]}, calls not to run.
POISON_ENV = "EKUIPER_SDK_WORKER_POISON"
#: One slot per function name: the running request's length and CRC-32, zero when idle.
SLOT = struct.Struct("<II")

Call = tuple[int, int]


def offsets(functions: list[str]) -> dict[str, int]:
    """Where each function's slot is: function names in sorted order.

    >>> offsets(["b", "a"])
    {'a': 0, 'b': 8}
    """
    return {name: i * SLOT.size for i, name in enumerate(sorted(functions))}


def create(functions: list[str]) -> int:
    """A zeroed, already unlinked file of slots for a new worker; its descriptor."""
    folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
    import tempfile  # here: only a supervisor makes the file, and tempfile weighs 0.8 MB

    fd, path = tempfile.mkstemp(prefix="ekuiper_sdk_calls_", dir=folder)
    os.unlink(path)
    try:
        os.write(fd, bytes(max(1, len(functions)) * SLOT.size))
    except BaseException:
        os.close(fd)
        raise
    return fd


def pending(fd: int, functions: list[str]) -> dict[str, Call]:
    """The calls a dead worker was running, by function name (the supervisor)."""
    try:
        data = os.pread(fd, max(1, len(functions)) * SLOT.size, 0)
    except OSError:
        return {}
    found = {}
    for name, offset in offsets(functions).items():
        if offset + SLOT.size <= len(data):
            call = SLOT.unpack_from(data, offset)
            if call != (0, 0):
                found[name] = call
    return found


class CallBoard:
    """The worker's side: marks each running call, refuses a call that killed the last one."""

    def __init__(self, fd: int, functions: list[str], poison: dict[str, list[Any]]) -> None:
        try:
            self._map = mmap.mmap(fd, max(1, len(functions)) * SLOT.size)
        finally:
            os.close(fd)
        self._offsets = offsets(functions)
        self._poison = poison

    @classmethod
    def from_env(cls, functions: list[str]) -> CallBoard | None:
        """The board the supervisor prepared, if any."""
        fd = os.environ.pop(CALLS_ENV, "")
        if not fd.isdigit():
            return None
        try:
            poison = json.loads(os.environ.pop(POISON_ENV, "") or "{}")
        except ValueError:
            poison = {}
        return cls(int(fd), functions, poison if isinstance(poison, dict) else {})

    def refuse(self, poison: dict[str, list[Any]]) -> None:
        """Replace the calls not to run (a spare worker learns them when it takes over;
        functions are started after this, so their ``guard`` reads the new ones)."""
        self._poison = dict(poison)

    def guard(self, name: str, handle: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
        """``handle`` with its calls marked on the board."""
        offset = self._offsets.get(name)
        if offset is None:
            return handle
        slots, mark = self._map, SLOT.pack_into
        refused: dict[Call, str] = {}
        for entry in self._poison.pop(name, None) or []:
            if isinstance(entry, list) and len(entry) == 3:
                refused[(int(entry[0]), int(entry[1]))] = str(entry[2])

        def guarded(data: bytes) -> bytes:
            call = (len(data), zlib.crc32(data))
            if refused and call in refused:
                return protocol.func_reply(False, f"this call ended the plugin's worker "
                                                  f"process ({refused[call]}); it is not run "
                                                  "again")
            mark(slots, offset, *call)
            try:
                return handle(data)
            finally:
                mark(slots, offset, 0, 0)

        return guarded
