"""runtime/memory.py: one trim per burst of stops, after they settle; the arena cap's switches."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time

import pytest

from ekuiper_sdk.runtime import memory
from ekuiper_sdk.runtime.pool import ThreadPool
from ekuiper_sdk.testing import wait_for


def test_a_burst_of_stops_gets_one_trim_once_it_has_settled() -> None:
    trims: list[float] = []
    trimmer = memory.Trimmer(ThreadPool("test-trim").submit, trim=lambda: trims.append(
        time.monotonic()), settle_s=0.3)
    began = time.monotonic()
    for _ in range(20):
        trimmer.after_stop()
        time.sleep(0.02)
    last = time.monotonic()
    wait_for(lambda: trims, 5, "the trim")
    time.sleep(0.5)
    assert len(trims) == 1
    assert trims[0] - last >= 0.29  # not before the stops had been quiet for settle_s
    assert trims[0] - began >= 0.6
    trimmer.after_stop()  # a later stop gets a trim of its own
    wait_for(lambda: len(trims) == 2, 5, "the second trim")


def arena_env(extra: dict[str, str]) -> str:
    """What a fresh process that imports the runtime prints for its arena cap decision."""
    code = ("from ekuiper_sdk.runtime import memory, channels; import unittest.mock as m\n"
            "calls = []\n"
            "with m.patch.object(memory, '_LIBC', m.Mock(mallopt=lambda *a: calls.append(a))):\n"
            "    memory.limit_arenas()\n"
            "print(calls)")
    env = {k: v for k, v in os.environ.items()
           if k not in ("MALLOC_ARENA_MAX", memory.ARENAS_ENV)}
    return subprocess.run([sys.executable, "-c", code], env={**env, **extra}, text=True,
                          capture_output=True, check=True, timeout=60).stdout.strip()


def test_arenas_are_capped_unless_the_environment_says_otherwise() -> None:
    assert arena_env({}) == f"[({memory._M_ARENA_MAX}, {memory.ARENAS})]"
    assert arena_env({memory.ARENAS_ENV: "4"}) == f"[({memory._M_ARENA_MAX}, 4)]"
    assert arena_env({memory.ARENAS_ENV: "0"}) == "[]"
    assert arena_env({"MALLOC_ARENA_MAX": "8"}) == "[]"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_on_glibc_the_c_library_is_found_and_a_trim_runs() -> None:
    assert memory._LIBC is not None
    done = threading.Event()
    memory.Trimmer(lambda job: threading.Thread(target=lambda: (job(), done.set())).start(),
                   settle_s=0).after_stop()
    assert done.wait(10)
