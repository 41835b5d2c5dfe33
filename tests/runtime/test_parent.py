"""runtime/parent.py: a plugin notices that the process that started it is gone.

Real processes: a "host" process starts a child that watches it, then the host is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ekuiper_sdk.testing import wait_for

CHILD = textwrap.dedent("""
    import os, sys, threading
    if sys.argv[2] == "no-pidfd" and hasattr(os, "pidfd_open"):
        del os.pidfd_open  # as on a kernel or Python without pidfds
    from ekuiper_sdk.runtime.parent import watch_parent
    out = open(sys.argv[1], "a")
    done = threading.Event()
    def gone(pid):
        out.write(f"gone {pid}\\n"); out.flush(); done.set()
    watch_parent(gone)
    out.write("ready\\n"); out.flush()
    done.wait(60)
""")

HOST = textwrap.dedent("""
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], sys.argv[3]])
    print(child.pid, flush=True)
    time.sleep(60)
""")


@pytest.mark.parametrize("how", ["pidfd", "no-pidfd"])
def test_a_killed_parent_is_noticed(tmp_path: Path, how: str) -> None:
    record = tmp_path / "record.txt"
    host = subprocess.Popen([sys.executable, "-c", HOST, CHILD, str(record), how],
                            stdout=subprocess.PIPE, text=True)
    child = 0
    try:
        assert host.stdout is not None
        child = int(host.stdout.readline())
        wait_for(lambda: record.exists() and "ready" in record.read_text(), 10,
                 "the child watching its parent")
        assert "gone" not in record.read_text()
        host.kill()
        host.wait()
        wait_for(lambda: f"gone {host.pid}" in record.read_text(), 10,
                 "the child noticing that its parent is gone")
    finally:
        host.kill()
        if child:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it exited once it noticed, as it should
