"""The benchmark keeps working: one tiny run of every measurement but memory."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_a_tiny_benchmark_run_prints_the_table(official_sdk_python: str) -> None:
    cached = list((Path.home() / ".cache" / "ekuiper-sdk-bench").glob("benchhost-*"))
    if shutil.which("go") is None and not cached:
        pytest.skip("the benchmark host needs Go to build")
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--tiny"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = proc.stdout
    header = out.index("metric ")
    assert "official" in out[header:] and "ceiling" in out[header:]
    for metric in ("source, tuples/s", "sink, bytes, frames/s", "sink, bytes, requireAck",
                   "sink, decoded", "function Exec calls/s", "stop source while data flows, p99",
                   "stop sink while data flows, p99", "host (Go) against a Go plugin"):
        assert metric in out, f"{metric!r} missing from:\n{out}"
