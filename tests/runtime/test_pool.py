"""runtime/pool.py: a job never waits for a free thread, and idle extra threads end."""

from __future__ import annotations

import threading

import pytest

from ekuiper_sdk.runtime.pool import ThreadPool
from ekuiper_sdk.testing import wait_for


def test_a_blocked_job_holds_only_its_own_thread() -> None:
    pool = ThreadPool("test-blocked", keep=1, extra_idle_s=0.2)
    release = threading.Event()
    inside = threading.Event()

    def blocked() -> None:
        inside.set()
        release.wait(10)

    pool.submit(blocked)
    assert inside.wait(5)
    done = [threading.Event() for _ in range(5)]
    for event in done:
        pool.submit(event.set)
    assert all(event.wait(5) for event in done)  # while the first job still blocks
    release.set()


def test_extra_threads_end_when_idle_and_the_kept_few_stay() -> None:
    pool = ThreadPool("test-shrink", keep=2, extra_idle_s=0.2)
    release = threading.Event()
    started = threading.Semaphore(0)

    def job() -> None:
        started.release()
        release.wait(10)

    for _ in range(8):
        pool.submit(job)
    for _ in range(8):
        assert started.acquire(timeout=5)
    assert pool.threads == 8
    release.set()
    wait_for(lambda: pool.threads == 2, 5, "the pool back to its kept threads")
    ran = threading.Event()
    pool.submit(ran.set)  # the kept threads still take jobs
    assert ran.wait(5)
    assert pool.threads == 2


def test_a_failing_job_is_logged_and_the_thread_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    pool = ThreadPool("test-fail", keep=1)
    failed = threading.Event()

    def fails() -> None:
        failed.set()
        raise RuntimeError("job exploded")

    pool.submit(fails)
    assert failed.wait(5)
    wait_for(lambda: "a test-fail job failed" in caplog.text, 5, "the failure logged")
    ran = threading.Event()
    pool.submit(ran.set)
    assert ran.wait(5)
    assert pool.threads == 1  # the thread that ran the failing job took this one too
