"""Steps on many servers at once: the cap, a stop, and a step that raises."""

from __future__ import annotations

import threading
import time

import pytest

from ekuiper_sdk.tools.fleet.parallel import run_all


def test_at_most_width_steps_run_at_once_and_results_keep_their_order() -> None:
    running, most = [0], [0]
    lock = threading.Lock()

    def step(n: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return n * 10

    assert run_all(list(range(12)), step, width=3, stop=threading.Event()) == \
        [n * 10 for n in range(12)]
    assert most[0] == 3


def test_a_stop_starts_no_new_step() -> None:
    stop = threading.Event()
    done: list[int] = []

    def step(n: int) -> int:
        done.append(n)
        stop.set()
        return n

    assert run_all([1, 2, 3, 4], step, width=1, stop=stop) == [1]
    assert done == [1]


def test_a_step_that_raises_is_raised_here_after_the_others_finish() -> None:
    finished: list[int] = []

    def step(n: int) -> int:
        if n == 0:
            raise ValueError("boom")
        time.sleep(0.05)
        finished.append(n)
        return n

    with pytest.raises(ValueError, match="boom"):
        run_all([0, 1, 2, 3, 4, 5], step, width=2, stop=threading.Event())
    assert finished in ([], [1])     # the one running went on; no new one started after
