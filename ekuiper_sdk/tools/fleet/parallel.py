"""Run a step on many servers at once, with a cap, and stay interruptible.

The workers are daemon threads, so the main thread keeps Ctrl-C: a first one sets the
``stop`` event (workers finish the REST call they are in and start no new step), and a
second one stops waiting at once. A REST call cannot outlive its own timeout, so a wave
takes as long as its slowest server, never longer than that server's bounded steps.

Example::

    >>> results = run_all([1, 2, 3], lambda n: n * n, width=2, stop=threading.Event())
    >>> results
    [1, 4, 9]
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Sequence
from typing import Callable, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Interrupted(KeyboardInterrupt):
    """A second Ctrl-C while a wave was finishing: the steps still running are abandoned.
    A KeyboardInterrupt, so that a caller that does not catch it ends as Ctrl-C ends."""


@contextlib.contextmanager
def patient(on_first: Callable[[], None]) -> Iterator[None]:
    """While the block runs, a first Ctrl-C only calls ``on_first`` and a second raises
    :class:`Interrupted`: for work that must not stop half-way (a rollback). Only the main
    thread can set a signal handler; elsewhere Ctrl-C is left as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    presses = [0]

    def handler(signum: int, frame: object) -> None:
        presses[0] += 1
        if presses[0] > 1:
            raise Interrupted()
        on_first()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_all(items: Sequence[T], step: Callable[[T], R], *, width: int,
            stop: threading.Event, on_interrupt: Callable[[], None] | None = None) -> list[R]:
    """``step(item)`` for every item, at most ``width`` at a time; the results in order.

    ``step`` should report failures in its result; if it raises, no new item starts and
    the first exception is raised here once the running ones are done. Items not yet started
    when ``stop`` is set are never started and have no result: the list then holds the
    results of the items that ran, still in order; callers keep their own record of what
    each item did.
    """
    results: dict[int, R] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()
    queue = list(enumerate(items))
    finished = threading.Event()
    running = [0]

    def worker() -> None:
        while True:
            with lock:
                if not queue or stop.is_set():
                    running[0] -= 1
                    if running[0] == 0:
                        finished.set()
                    return
                index, item = queue.pop(0)
            try:
                result = step(item)
            except Exception as exc:  # noqa: BLE001 - raised again in the calling thread
                with lock:
                    errors.append(exc)
                    queue.clear()
                continue
            with lock:
                results[index] = result

    count = max(1, min(width, len(queue)))
    if not queue:
        return []
    running[0] = count
    for n in range(count):
        threading.Thread(target=worker, name=f"fleet-{n}", daemon=True).start()
    interrupts = 0
    while True:
        try:
            if finished.wait(0.2):
                break
        except KeyboardInterrupt:
            interrupts += 1
            stop.set()
            if on_interrupt is not None:
                on_interrupt()
            if interrupts > 1:
                raise Interrupted() from None
    if errors:
        raise errors[0]
    return [results[i] for i in sorted(results)]
