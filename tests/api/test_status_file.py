"""The plugin's status file: written by real plugin processes when something happens, read
back as ``ekuiper-plugin status`` reads it."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Callable

import pytest
from helpers import PLUGINS

from ekuiper_sdk.status_file import describe, find_status, status_path
from ekuiper_sdk.testing import FunctionError, PluginHost, wait_for


def test_one_process_writes_its_hung_calls_only_once_one_happens(
        plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
        tmp_path: Path) -> None:
    name = unique_name()
    host = plugin_host_factory(name, PLUGINS / "reliable" / "reliable.py", env={
        "PLUGIN_NAME": name, "FUNC_PREFIX": name + "_", "EKUIPER_SDK_SUPERVISE": "0",
        "EKUIPER_SDK_CALL_LIMIT": "1", "EKUIPER_SDK_STATE_DIR": str(tmp_path)})
    fh = host.function(name + "_sleepy")
    assert fh.call("fine") == "fine"
    assert not os.path.exists(status_path(str(tmp_path), name))  # nothing to say yet
    with pytest.raises(FunctionError, match="is stuck in"):
        fh.call("forever")
    wait_for(lambda: os.path.exists(status_path(str(tmp_path), name)), timeout=5)
    found = find_status(name, str(tmp_path))
    assert found is not None
    path, status = found
    assert path == status_path(str(tmp_path), name)
    assert status["mode"] == "one process" and status["hung_calls"] == 1
    assert status["pid"] == host.pid
    [stuck] = status["stuck_now"]
    assert stuck.startswith(f"function '{name}_sleepy'") and " in reliable.py:" in stuck
    assert describe(status).startswith("one process, 1 hung call, stuck now: function")


def test_the_supervisor_writes_each_restart_and_its_cause(
        plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
        tmp_path: Path) -> None:
    name = unique_name()
    host = plugin_host_factory(name, PLUGINS / "supervised" / "supervised.py", env={
        "PLUGIN_NAME": name, "FUNC_PREFIX": name + "_", "EKUIPER_SDK_SUPERVISE": "1",
        "EKUIPER_SDK_SPARE_WORKER": "0", "EKUIPER_SDK_STATE_DIR": str(tmp_path)})
    fragile = host.function(name + "_fragile")
    worker = fragile.call("pid")
    path = status_path(str(tmp_path), name)
    wait_for(lambda: os.path.exists(path), timeout=5)
    first = find_status(name, str(tmp_path))
    assert first is not None and first[1]["restarts"] == 0
    assert first[1]["worker_pid"] == worker and first[1]["pid"] == host.pid
    os.kill(worker, signal.SIGKILL)
    give_up = time.monotonic() + 10
    while fragile.call("pid") == worker and time.monotonic() < give_up:
        time.sleep(0.05)
    # The new worker serves calls a moment before the supervisor writes that it does.
    wait_for(lambda: (find_status(name, str(tmp_path)) or ("", {}))[1].get("worker_pid"),
             timeout=5)
    found = find_status(name, str(tmp_path))
    assert found is not None
    status = found[1]
    assert status["restarts"] == 1 and status["last_cause"] == "killed by signal SIGKILL"
    assert status["worker_pid"] not in (None, worker)
    assert describe(status).startswith("supervised, 1 restart (last: killed by signal SIGKILL)")
