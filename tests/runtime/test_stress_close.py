"""A short run of tests/helpers/stress_close.py: concurrent stops and closes never hang.

The full run (hundreds of cycles, by hand, on each supported pynng) is described in
docs/reliability.md; here a few cycles in child processes, each bounded, so that a
regression shows as a failure with the hung threads' stacks rather than as a stalled suite.
"""

from __future__ import annotations

import subprocess
import sys

from helpers import TESTS

SCRIPT = TESTS / "helpers" / "stress_close.py"


def test_concurrent_stops_and_closes_finish() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--cycles", "6", "--batch", "3",
                           "--cycle-timeout", "20"], capture_output=True, text=True, timeout=120)
    summary = proc.stdout.strip().splitlines()[-1]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary.startswith("cycles=6 hangs=0 failures=0 "), summary
