"""The frames each sink instance took and finished, shared between a worker and its supervisor.

With ``requireAck`` eKuiper sends a sink one frame, then waits for its ack before it sends
the next (docs/protocol.md, "requireAck"); a worker that dies while collecting a frame
never acks it, and the rule's sink would wait for good. So a worker counts, per sink
instance, the frames it took from the socket and the frames it finished (collected, and
acked when the rule asks for acks) in a slot of a small shared file; when the worker dies
the supervisor reads the slots: a sink that owes an ack gets an error ack from the
supervisor, which eKuiper takes as an IO error (its ``resendInterval`` or cache sends the
frame again), and frames taken but not collected are named in the death's log line. The
cost is one 8-byte write per batch taken and one per frame finished.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
from dataclasses import dataclass

#: Set in a worker's environment: the descriptor of the shared file of sink slots (the file
#: is unlinked at once, so a supervisor killed by SIGKILL leaves nothing behind).
SINKS_ENV = "EKUIPER_SDK_WORKER_SINKS"
#: Sink instances tracked at once per worker; more are served, untracked.
SLOTS = 256
SLOT_SIZE = 256
#: frames taken, frames finished, requireAck, length of the key that follows.
HEAD = struct.Struct("<QQBH")
COUNT = struct.Struct("<Q")
KEY_MAX = SLOT_SIZE - HEAD.size


@dataclass(frozen=True)
class Unfinished:
    """A sink instance whose worker died with frames taken but not finished."""

    key: str
    require_ack: bool
    frames: int


def create() -> int:
    """A zeroed, already unlinked file of slots for a new worker; its descriptor."""
    folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
    import tempfile  # here: only a supervisor makes the file, and tempfile weighs 0.8 MB

    fd, path = tempfile.mkstemp(prefix="ekuiper_sdk_sinks_", dir=folder)
    os.unlink(path)
    try:
        os.ftruncate(fd, SLOTS * SLOT_SIZE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def unfinished(fd: int) -> list[Unfinished]:
    """The sink instances of a dead worker that took frames they did not finish.

    >>> fd = create(); unfinished(fd)
    []
    >>> os.close(fd)
    """
    try:
        data = os.pread(fd, SLOTS * SLOT_SIZE, 0)
    except OSError:
        return []
    found = []
    for offset in range(0, len(data) - SLOT_SIZE + 1, SLOT_SIZE):
        taken, finished, ack, size = HEAD.unpack_from(data, offset)
        if size and taken > finished:
            start = offset + HEAD.size
            key = data[start:start + min(size, KEY_MAX)].decode("utf-8", "replace")
            found.append(Unfinished(key, bool(ack), taken - finished))
    return found


class Tally:
    """One sink instance's counters in its slot (the sink's own thread writes them)."""

    __slots__ = ("_board", "_index", "_offset", "_pack", "_map", "taken", "begun", "finished")

    def __init__(self, board: SinkBoard, index: int) -> None:
        self._board, self._index = board, index
        self._offset = index * SLOT_SIZE
        self._map = board.map
        self._pack = COUNT.pack_into
        self.taken = self.begun = self.finished = 0

    def took(self, frames: int) -> None:
        """Frames taken from the socket, before any of them is collected."""
        self.taken += frames
        self._pack(self._map, self._offset, self.taken)

    def begin(self) -> None:
        """The next frame is being collected."""
        self.begun += 1

    def done(self) -> None:
        """The frame begun last is finished; once per frame, however often it is called.

        With acks it is called just *before* the ack is sent: a worker that dies between
        the two then loses that ack (a window of microseconds, inside nng), whereas the
        other order would make the supervisor ack a frame eKuiper already has an ack for,
        and every later ack would then answer the frame before its own.
        """
        if self.finished < self.begun:
            self.finished = self.begun
            self._pack(self._map, self._offset + 8, self.finished)

    def release(self) -> None:
        """The instance closed: its slot is free again."""
        self._board.release(self._index)


class SinkBoard:
    """The worker's side: a slot per running sink instance."""

    def __init__(self, fd: int) -> None:
        try:
            self.map = mmap.mmap(fd, SLOTS * SLOT_SIZE)
        finally:
            os.close(fd)
        self._lock = threading.Lock()
        self._free = list(range(SLOTS - 1, -1, -1))

    @classmethod
    def from_env(cls) -> SinkBoard | None:
        """The board the supervisor prepared, if any."""
        fd = os.environ.pop(SINKS_ENV, "")
        return cls(int(fd)) if fd.isdigit() else None

    def claim(self, key: str, require_ack: bool) -> Tally | None:
        """A slot for a starting sink instance; None when every slot is taken."""
        name = key.encode("utf-8")[:KEY_MAX]
        with self._lock:
            if not self._free:
                return None
            index = self._free.pop()
        offset = index * SLOT_SIZE
        self.map[offset + HEAD.size:offset + HEAD.size + len(name)] = name
        # The key's length last: a slot reads as in use only once it is complete.
        HEAD.pack_into(self.map, offset, 0, 0, int(require_ack), len(name))
        return Tally(self, index)

    def release(self, index: int) -> None:
        HEAD.pack_into(self.map, index * SLOT_SIZE, 0, 0, 0, 0)
        with self._lock:
            self._free.append(index)
