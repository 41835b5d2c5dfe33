"""``ctx.state`` under crashes and concurrent writers (real processes, real files)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ekuiper_sdk.state import State

WRITER = """
import sys
from ekuiper_sdk.state import State
path, key, count, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s = State(path)
print("ready", flush=True)
for n in range(1, count + 1):
    s[key] = n
    if size:
        s["blob"] = "x" * size
"""


def writer(path: Path, key: str, count: int, size: int = 0) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), key, str(count),
                             str(size)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def test_writers_killed_mid_write_leave_no_temp_file_once_the_store_is_opened_again(
        tmp_path: Path) -> None:
    path = tmp_path / "s.state"
    left = 0
    for kill in range(10):
        proc = writer(path, "n", 100000, 256 * 1024)
        time.sleep(0.05 + kill * 0.013)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        left += len(list(tmp_path.glob("*.tmp")))
        folder = tmp_path / f"copy{kill}"  # a fresh folder: sweeps are once per process
        folder.mkdir()
        for item in tmp_path.iterdir():
            if item.is_file():
                os.link(item, folder / item.name)
        store = State(str(folder / "s.state"))
        assert isinstance(store.get("n", 0), int)  # the old or the new value, never torn
        assert not list(folder.glob("*.tmp"))
    assert left > 0, "no kill landed mid-write: the sweep was not exercised"


def test_two_processes_writing_one_store_keep_each_others_keys(tmp_path: Path) -> None:
    path = tmp_path / "s.state"
    first, second = writer(path, "a", 300), writer(path, "b", 300)
    assert first.wait(60) == 0 and second.wait(60) == 0
    assert dict(State(str(path))) == {"a": 300, "b": 300}


def test_two_stores_of_one_file_in_one_process_keep_each_others_keys(tmp_path: Path) -> None:
    # As when a start replaces an instance whose open still runs: two State objects.
    path = str(tmp_path / "s.state")
    old, new = State(path), State(path)

    def count(store: State, key: str) -> None:
        for n in range(1, 201):
            store[key] = n

    threads = [threading.Thread(target=count, args=(old, "a")),
               threading.Thread(target=count, args=(new, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert dict(State(path)) == {"a": 200, "b": 200}
    new.reload()
    assert dict(new) == {"a": 200, "b": 200}
    del new["a"]  # a delete is merged too
    old["c"] = 1
    assert dict(State(path)) == {"b": 200, "c": 1}
    old.clear()
    assert dict(State(path)) == {}
