"""A source whose open() never returns: logged once with where it hangs, counted, capped."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable

import pytest
from helpers import PLUGINS

from ekuiper_sdk.runtime import lingering
from ekuiper_sdk.testing import HostError, PluginHost, wait_for


def test_stuck_opens_are_logged_once_counted_and_capped_per_symbol(
        plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str]) -> None:
    name = unique_name()
    host = plugin_host_factory(name, PLUGINS / "reliable" / "reliable.py",
                               env={"PLUGIN_NAME": name, "FUNC_PREFIX": name + "_"})
    tasks = f"/proc/{host.pid}/task"
    idle = len(os.listdir(tasks))
    cap = lingering.MAX_PER_SYMBOL
    for cycle in range(cap):
        src = host.start_source("stuck", f"{name}r{cycle}")
        assert src.recv().message == {"stuck": True}
        src.stop()
    last_stop = time.monotonic()
    host.wait_output("its open() has not returned", timeout=lingering.LINGER_S + 10)
    time.sleep(max(0.0, last_stop + lingering.LINGER_S + 1.0 - time.monotonic()))
    wait_for(lambda: len(os.listdir(tasks)) <= idle + cap + 2, timeout=10)
    with pytest.raises(HostError, match=f"{cap} earlier instances of source 'stuck' are "
                       "stopped but their open\\(\\) never returned"):
        host.start_source("stuck", f"{name}rmore")
    lines = [line for line in host.output if "its open() has not returned" in line]
    assert len(lines) == 1, lines  # the other threads are counted, not logged each
    assert "blocked at threading.py" in lines[0]
    assert "called from" in lines[0] and "reliable.py" in lines[0] and "in open" in lines[0]
    # The cap holds: no more threads than the capped ones (and the plugin's own).
    assert len(os.listdir(tasks)) <= idle + cap + 2
    # Other sources are not affected.
    other = host.start_source("counter", f"{name}ok", config={"record": str(Path("/dev/null"))})
    assert other.recv().message["n"] == 1
    other.stop()


def test_a_thread_whose_open_returned_is_forgotten_at_once() -> None:
    registry = lingering.Lingering()
    threads = [threading.Thread(target=lambda: None) for _ in range(3)]
    for thread in threads:
        thread.start()
        registry.track(thread, "sym")
    for thread in threads:
        thread.join(5)
        registry.returned(thread, "sym")
    assert registry._threads == {}  # no thread object kept once the rules have gone
    assert registry.count() == 0
