"""A few threads shared by every sink instance: more while more are busy, a fixed few idle.

An idle sink has no thread (:mod:`.parking`); when a frame arrives, a pool thread serves
it until it is idle again. A job that blocks (a slow ``collect``, an ``open`` that takes
its time) holds only its own thread: a job never waits for a free thread, since a new one
starts whenever every thread is taken. Threads beyond the fixed few end after being idle
for a while, so a burst costs one timed wait per extra thread, not a periodic wake-up; the
fixed few wait with no timer.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Callable

log = logging.getLogger("ekuiper_sdk")

#: Threads kept while nothing happens: they wait with no time-out.
KEEP_IDLE = 2
#: How long a thread beyond those waits for a job before it ends.
EXTRA_IDLE_S = 5.0


class ThreadPool:
    """Runs each submitted job at once on a thread of its own, reusing idle threads.

    >>> pool = ThreadPool("doc"); done = threading.Event()
    >>> pool.submit(done.set); done.wait(5)
    True
    """

    def __init__(self, name: str, keep: int = KEEP_IDLE,
                 extra_idle_s: float = EXTRA_IDLE_S) -> None:
        self.name = name
        self._keep = keep
        self._extra_idle_s = extra_idle_s
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # Invariant, under the lock: waiting >= queued, so a job always has a taker.
        self._waiting = 0  # threads inside (or about to enter) a wait for a job
        self._queued = 0  # jobs submitted and not taken yet
        self._alive = 0
        self._started = 0

    @property
    def threads(self) -> int:
        """The pool's threads alive now."""
        return self._alive

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job()`` on a pool thread; what it raises is logged. Any thread may call.

        Called from nng's own threads too (a parked socket's completion): it never blocks.
        """
        with self._lock:
            self._queued += 1
            self._jobs.put(job)
            if self._queued <= self._waiting:
                return
            self._waiting += 1
            self._alive += 1
            self._started += 1
            number = self._started
        threading.Thread(target=self._work, name=f"{self.name} {number}", daemon=True).start()

    def _work(self) -> None:
        while True:
            job = self._next()
            if job is None:
                return
            try:
                job()
            except Exception:  # noqa: BLE001 - one job's failure must not end the thread
                log.exception("a %s job failed", self.name)
            with self._lock:
                self._waiting += 1

    def _next(self) -> Callable[[], None] | None:
        """The next job, or None when this thread is one too many and may end."""
        while True:
            with self._lock:
                timeout = None if self._alive <= self._keep else self._extra_idle_s
            try:
                job = self._jobs.get(timeout=timeout)
            except queue.Empty:
                with self._lock:
                    # Leave only if the threads still waiting can take every queued job.
                    if self._alive > self._keep and self._waiting - 1 >= self._queued:
                        self._waiting -= 1
                        self._alive -= 1
                        return None
                continue
            with self._lock:
                self._waiting -= 1
                self._queued -= 1
            return job


#: The pool every sink instance of the process runs on (one, like nng's own threads).
SINKS = ThreadPool("sink")
