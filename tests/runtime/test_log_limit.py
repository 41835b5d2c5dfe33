"""Repeated lines are logged once in full, then counted (runtime/log_limit.py)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import pytest
from helpers import PLUGINS

from ekuiper_sdk.runtime import log_limit
from ekuiper_sdk.testing import PluginHost, SinkAckError


def test_the_first_line_is_logged_in_full_then_repeats_are_counted_per_interval(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    clock = [100.0]
    monkeypatch.setattr(log_limit.time, "monotonic", lambda: clock[0])
    limiter = log_limit.LogLimiter(logging.getLogger("test.limit"), interval_s=10)
    with caplog.at_level(logging.WARNING, "test.limit"):
        logged = [limiter.warning("peer", "refused pid %d", pid) for pid in range(1000)]
        clock[0] += 11
        limiter.warning("peer", "refused pid %d", 1000)
        limiter.warning("other", "another thing")
    assert logged.count(True) == 1
    assert [r.getMessage() for r in caplog.records] == [
        "refused pid 0", "refused pid 1000 (and 999 more like it in the last 11 s)",
        "another thing"]


def test_flush_reports_what_was_only_counted_and_keys_are_bounded(
        caplog: pytest.LogCaptureFixture) -> None:
    limiter = log_limit.LogLimiter(logging.getLogger("test.limit"), max_keys=3)
    with caplog.at_level(logging.WARNING, "test.limit"):
        for key in range(10):
            limiter.warning(key, "thing %d", key)
        limiter.warning(9, "thing 9 again")
        limiter.flush()
    assert len(limiter._seen) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert messages[:10] == [f"thing {k}" for k in range(10)]
    assert messages[10].startswith("thing 9 again (and 1 more like it")


def test_a_collect_that_fails_on_every_frame_logs_one_traceback_and_a_count(
        plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
        tmp_path: Path) -> None:
    name = unique_name()
    host = plugin_host_factory(name, PLUGINS / "reliable" / "reliable.py",
                               env={"PLUGIN_NAME": name, "FUNC_PREFIX": name + "_"})
    sink = host.start_sink("recorder", name + "r", config={"record": str(tmp_path / "r.txt"),
                                                          "requireAck": True})
    for n in range(300):
        with pytest.raises(SinkAckError, match=f"cannot write fail {n}"):
            sink.send(f"fail {n}".encode())  # every frame still gets its error ack
    sink.stop()
    host.wait_output("closed after collecting 300 of the 300")
    output = host.output
    assert sum("Traceback" in line for line in output) == 1
    failed = [line for line in output if "collect failed" in line]
    assert len(failed) == 2, failed
    assert "and 299 more like it" in failed[1]
