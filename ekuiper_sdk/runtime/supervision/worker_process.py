"""The supervisor's handle on one worker process: start it, talk to it, tell how it died.

One Pair0 socket per worker, listened on by the supervisor at a name of its own (plugin
name, supervisor pid, worker number, random part). On Linux it is an abstract socket,
which leaves no file behind even when eKuiper kills the supervisor with SIGKILL; anyone on
the machine could dial it, so a connection from any process but the worker is refused
(its peer pid, which the kernel reports). Elsewhere it is a file under ``/tmp`` only the
user may open. As everywhere in the runtime (``channels``), the socket is used and
closed by one thread at a time: the holder of ``_lock``.
"""

from __future__ import annotations

import collections
import logging
import os
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Callable

import pynng

from .. import channels, peers, protocol
from ..log_limit import LogLimiter
from ..roles import WORKER_ENV
from .worker import EXIT_HUNG, EXIT_OUT_OF_MEMORY

log = logging.getLogger("ekuiper_sdk")
_refusals = LogLimiter(log)

#: How many of the worker's last stderr lines a death report quotes, of how many kept.
TAIL_LINES = 3
KEPT_LINES = 100
#: How long an exchange waits between two looks at whether the worker still lives.
POLL_MS = 50
#: How long a dead worker's stderr may take to reach its end before the report is written.
TAIL_WAIT_S = 0.5


class WorkerDied(Exception):
    """The worker exited before it answered."""


class WorkerProcess:
    """A worker started with ``command``; its stderr is copied to ours, its tail kept.

    ``on_exit(worker)`` is called on a thread of its own when the process has exited.
    """

    def __init__(self, plugin: str, command: list[str], number: int,
                 on_exit: Callable[[WorkerProcess], None],
                 env: dict[str, str] | None = None, pass_fds: tuple[int, ...] = ()) -> None:
        self.number = number
        # Set once the process has been reaped; only the waiter thread calls wait(), since
        # Popen.poll() answers None while another thread waits.
        self.exited = threading.Event()
        self._on_exit = on_exit
        name = f"ekuiper_sdk_{plugin}_{os.getpid()}_w{number}_{secrets.token_hex(4)}"
        self.abstract = sys.platform.startswith("linux")
        self.url = f"abstract://{name}" if self.abstract else f"ipc:///tmp/{name}.ipc"
        self._spawned = threading.Event()
        self._ready = False  # its handshake came (under _lock)
        self._lock = threading.Lock()
        self._closed = False
        self._tail: collections.deque[str] = collections.deque(maxlen=KEPT_LINES)
        self._tail_done = threading.Event()
        self._copying = threading.Lock()  # held while a line is being copied
        self._sock = pynng.Pair0(recv_timeout=POLL_MS, send_timeout=1000, recv_max_size=0)
        try:
            # Only this user (peers), and of this user only the worker's pid (_admit),
            # checked in that order, both in place before the listener accepts.
            peers.admit_own_user(self._sock, "worker link")
            self._sock.add_pre_pipe_connect_cb(self._admit)
            peers.listen_mode_first(self._sock, self.url)
            full_env = dict(os.environ)
            full_env.update(env or {})
            full_env[WORKER_ENV] = self.url
            # stdout stays eKuiper's; stderr (the log) goes through us for its last lines.
            self.proc = subprocess.Popen(command, env=full_env, stderr=subprocess.PIPE,
                                         pass_fds=pass_fds)
        except BaseException:
            self._sock.close()
            raise
        self.pid = self.proc.pid
        self._spawned.set()
        # The supervisor's descriptors of the worker's call slots (see inflight) and sink
        # slots (see sinkboard), if passed.
        self.calls_fd = pass_fds[0] if pass_fds else -1
        self.sinks_fd = pass_fds[1] if len(pass_fds) > 1 else -1
        self.started_at = time.monotonic()
        assert self.proc.stderr is not None
        threading.Thread(target=self._copy_stderr, args=(self.proc.stderr,),
                         name=f"worker {number} stderr", daemon=True).start()
        threading.Thread(target=self._wait, name=f"worker {number} waiter", daemon=True).start()

    def _wait(self) -> None:
        self.proc.wait()
        self.exited.set()
        self._on_exit(self)

    def _admit(self, pipe: pynng.Pipe) -> None:
        """Refuse a connection from any process but the worker (an nng thread)."""
        if pipe.closed:
            return  # refused already: another user's
        self._spawned.wait(5.0)
        pid = peers.peer_pid(pipe)
        if pid != getattr(self, "pid", None):
            pipe.close()
            _refusals.warning(("worker link", self.number),
                              "refused a connection to worker %d's channel from pid %s",
                              self.number, pid)

    def _copy_stderr(self, stream: IO[bytes]) -> None:
        # Chunks straight from the pipe, not lines through a buffer: flush_output then
        # knows that an empty pipe means everything has been taken.
        fd = stream.fileno()
        partial = b""
        try:
            while True:
                data = os.read(fd, 65536)
                if not data:
                    break
                with self._copying:
                    self._write(data)
                    *lines, partial = (partial + data).split(b"\n")
                    for line in lines[-KEPT_LINES:]:
                        text = line.decode("utf-8", "replace").rstrip()
                        if text:
                            self._tail.append(text)
        except OSError:
            pass
        finally:
            if partial.strip():
                self._tail.append(partial.decode("utf-8", "replace").rstrip())
            stream.close()
            self._tail_done.set()

    @staticmethod
    def _write(data: bytes) -> None:
        try:
            out = getattr(sys.stderr, "buffer", None)
            if out is not None:
                out.write(data)
                out.flush()
            else:
                sys.stderr.write(data.decode("utf-8", "replace"))
                sys.stderr.flush()
        except (OSError, ValueError):
            pass  # our stderr is gone; keep reading so the worker never blocks

    def flush_output(self, timeout: float = 0.2) -> None:
        """Wait (briefly) until what the worker wrote so far has been copied to our stderr.

        Called before an error answer is relayed, so that the worker's log lines about it
        (its traceback) come before the answer, as they do in a single process.
        """
        stream = self.proc.stderr
        give_up = time.monotonic() + timeout
        while stream is not None and not self._tail_done.is_set():
            try:
                readable = select.select([stream], [], [], 0)[0]
            except (OSError, ValueError):
                return
            if not readable:
                with self._copying:  # the line taken last is written
                    return
            if time.monotonic() > give_up:
                return
            time.sleep(0.002)

    def wait_ready(self, timeout: float) -> None:
        """Wait for the worker's first frame; ``WorkerDied`` if it exits or takes too long."""
        give_up = time.monotonic() + timeout
        with self._lock:
            while not self._ready:
                frame = self._receive()
                if frame is not None:
                    self._ready = True
                    if frame != protocol.HANDSHAKE:
                        log.warning("worker %d said %.80r before it was ready", self.number,
                                    frame)
                    # Connected: the path is no longer needed, and a supervisor killed by
                    # SIGKILL would leave it behind.
                    self._unlink()
                    return
                if time.monotonic() > give_up:
                    self.kill()
                    raise WorkerDied(f"the worker did not start within {timeout:g} s")

    def exchange(self, command: bytes) -> bytes:
        """Send a command and wait for its answer, for as long as the worker lives."""
        with self._lock:
            if self._closed:
                raise WorkerDied("the worker is gone")
            try:
                self._sock.send(command)
            except pynng.NNGException as exc:
                raise WorkerDied(f"cannot reach the worker: {exc}") from None
            while True:
                frame = self._receive()
                if frame is not None:
                    return frame

    def _receive(self) -> bytes | None:
        """One poll of the socket (lock held): a frame, None, or ``WorkerDied``."""
        try:
            return channels.receive(self._sock)
        except pynng.Timeout:
            if self.exited.is_set():
                raise WorkerDied(self.exit_description()) from None
            return None
        except pynng.NNGException as exc:
            raise WorkerDied(f"the worker's channel failed: {exc}") from None

    def exit_description(self) -> str:
        """How the worker ended: ``exit code 3``, ``killed by signal SIGSEGV``, ..."""
        code = self.proc.returncode if self.exited.is_set() else None
        if code is None:
            return "still running"
        if code < 0:
            try:
                return f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        if code == EXIT_OUT_OF_MEMORY:
            return f"exit code {code} (out of memory)"
        if code == EXIT_HUNG:
            return f"exit code {code} (a call was stuck)"
        return f"exit code {code}"

    def last_lines(self) -> list[str]:
        """What the worker last wrote to stderr (waits briefly for it after a death).

        After a fatal signal, faulthandler's report: its first line and the innermost
        frames of the thread that crashed, rather than the list of extension modules that
        ends it.
        """
        self._tail_done.wait(TAIL_WAIT_S)
        lines = list(self._tail)
        fatal = [i for i, line in enumerate(lines) if line.startswith("Fatal Python error")]
        if not fatal:
            return lines[-TAIL_LINES:]
        report = lines[fatal[-1]:]
        current = [i for i, line in enumerate(report) if line.startswith("Current thread")]
        frames = report[current[0] + 1:current[0] + TAIL_LINES] if current else []
        return [report[0]] + [frame.strip() for frame in frames]

    def terminate(self, timeout: float) -> None:
        """SIGTERM (the worker closes its symbols), then SIGKILL after ``timeout``."""
        if not self.exited.is_set():
            try:
                self.proc.send_signal(signal.SIGTERM)
            except OSError:
                return
            if not self.exited.wait(timeout):
                log.warning("worker %d (pid %d) did not exit within %g s of SIGTERM: killing it",
                            self.number, self.pid, timeout)
                self.kill()

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass

    def close(self) -> None:
        """Close the channel (the worker, if alive, takes that as its supervisor leaving)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._sock.close()
                self._unlink()

    def _unlink(self) -> None:
        if self.abstract:
            return
        try:
            os.unlink(protocol.url_path(self.url))
        except OSError:
            pass
