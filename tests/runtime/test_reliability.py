"""What must hold under load, faults and bad input; real plugin processes over real IPC.

The plugin is ``tests/plugins/reliable``; every test gives it a plugin name and function
names of its own, because IPC paths are global under /tmp.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers import PLUGINS

from ekuiper_sdk.testing import (
    FunctionError,
    HostError,
    InvalidFrameError,
    PluginHost,
    SinkAckError,
    wait_for,
)

PLUGIN = PLUGINS / "reliable" / "reliable.py"
LOGGER = "logger: logging.Logger"  # what the counter source records of ctx.get_logger()


class Reliable:
    """A started ``reliable`` plugin with its unique names and a folder for its records."""

    def __init__(self, host: PluginHost, prefix: str, folder: Path, unique: Callable[[], str]):
        self.host = host
        self.prefix = prefix
        self.folder = folder
        self.unique = unique

    def record(self, label: str) -> Path:
        return self.folder / f"{label}.txt"

    def lines(self, label: str) -> list[str]:
        path = self.record(label)
        return path.read_text().splitlines() if path.exists() else []

    def function(self, name: str) -> Any:
        return self.host.function(self.prefix + name)

    def task_count(self) -> int:
        return len(os.listdir(f"/proc/{self.host.pid}/task"))

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.host.pid}/fd"))


@pytest.fixture
def reliable(plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
             tmp_path: Path) -> Reliable:
    name = unique_name()
    prefix = name + "_"
    host = plugin_host_factory(name, PLUGIN, env={"PLUGIN_NAME": name, "FUNC_PREFIX": prefix})
    return Reliable(host, prefix, tmp_path, unique_name)


def collected_counts(output: list[str]) -> list[tuple[int, int]]:
    """(collected, received) from every 'closed after collecting' line of the plugin's log."""
    found = [re.search(r"closed after collecting (\d+) of the (\d+) frames received", line)
             for line in output]
    return [(int(m.group(1)), int(m.group(2))) for m in found if m]


# 1. Stop under load -------------------------------------------------------------------


def test_sink_stopped_under_load_answers_and_collects_every_frame_received(
        reliable: Reliable) -> None:
    cycles, frames = 100, 3000
    rule = reliable.unique()
    for cycle in range(cycles):
        record = reliable.record(f"sink{cycle}")
        sink = reliable.host.start_sink("recorder", rule, config={"record": str(record)})
        for i in range(frames):
            sink.send(b'{"i":%d}' % i)
        sink.stop(timeout=1.0)  # raises when the answer takes longer: a hung control channel
    wait_for(lambda: len(collected_counts(reliable.host.output)) == cycles, 10,
             "every sink instance closing")
    counts = collected_counts(reliable.host.output)
    for cycle, (collected, received) in enumerate(counts):
        assert collected == received, f"cycle {cycle}: frames received but never collected"
        lines = reliable.lines(f"sink{cycle}")
        assert lines[-1] == "closed"
        # What was collected is exactly the frames sent, in order, with no gap.
        assert [json.loads(line)["i"] for line in lines[:-1]] == list(range(collected))
    assert sum(c for c, _ in counts) >= cycles * frames * 0.9, "most frames were delivered"


def test_a_sink_stopped_inside_a_slow_collect_answers_and_loses_nothing_it_took(
        reliable: Reliable) -> None:
    record = reliable.record("slow")
    sink = reliable.host.start_sink("recorder", reliable.unique(),
                                    config={"record": str(record), "delay": 0.05})
    for i in range(40):
        sink.send(b'{"i":%d}' % i)
    wait_for(lambda: len(reliable.lines("slow")) >= 3, 5, "collect under way")
    sink.stop(timeout=1.0)  # answered although collect is busy for a while yet
    done_at_stop = len(reliable.lines("slow"))
    wait_for(lambda: reliable.lines("slow")[-1:] == ["closed"], 10, "the sink closing")
    collected = [json.loads(line)["i"] for line in reliable.lines("slow")[:-1]]
    assert collected == list(range(len(collected))), "in order, with no gap"
    assert len(collected) > done_at_stop, "what it had taken is collected after the answer"
    # The runtime logs its count after close() returned, and the host reads the plugin's
    # output in a thread of its own: the line can come a moment after "closed".
    wait_for(lambda: collected_counts(reliable.host.output), 5, "the sink's closing log line")
    assert collected_counts(reliable.host.output) == [(len(collected), len(collected))]


def test_sources_stopped_while_emitting_close_once_and_the_plugin_stays_healthy(
        reliable: Reliable) -> None:
    for cycle in range(20):
        record = reliable.record(f"src{cycle}")
        source = reliable.host.start_source("counter", reliable.unique(),
                                            config={"record": str(record)})
        assert [t.message["n"] for t in source.take(50)] == list(range(1, 51))
        source.stop(timeout=1.0)
    for cycle in range(20):
        wait_for(lambda c=cycle: reliable.lines(f"src{c}") == ["open", LOGGER, "close"], 5,
                 f"source {cycle} closing once")
    assert reliable.function("echo").call("still there")["args"] == ["still there"]


# 2. Host death and signals ------------------------------------------------------------

HOST_SCRIPT = textwrap.dedent("""
    import sys, time
    from ekuiper_sdk.testing import PluginHost
    name, plugin, record = sys.argv[1:4]
    host = PluginHost(name, plugin, env={"PLUGIN_NAME": name, "FUNC_PREFIX": name + "_"})
    host.start()
    host.start_source("counter", name + "r1", config={"record": record, "interval": 0.01})
    host.start_sink("recorder", name + "r2", config={"record": record})
    print(host.pid, flush=True)
    time.sleep(60)
""")


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie has exited; only its parent has not collected it yet.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[1].startswith("Z")


def test_the_plugin_exits_by_itself_when_the_host_is_killed(
        unique_name: Callable[[], str], tmp_path: Path) -> None:
    name = unique_name()
    host = subprocess.Popen([sys.executable, "-c", HOST_SCRIPT, name, str(PLUGIN),
                             str(tmp_path / "record.txt")], stdout=subprocess.PIPE, text=True)
    try:
        assert host.stdout is not None
        plugin_pid = int(host.stdout.readline())
        assert not process_gone(plugin_pid)
        host.kill()  # SIGKILL: the host gets no chance to clean anything up
        host.wait()
        wait_for(lambda: process_gone(plugin_pid), 2.0, "the orphaned plugin exiting")
    finally:
        host.kill()
        for leftover in (f"plugin_{name}", f"{name}r1_op1_0", f"{name}r2_op1_0",
                         f"{name}r2_op1_0_ack"):
            Path(f"/tmp/{leftover}.ipc").unlink(missing_ok=True)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_closes_every_symbol_then_exits(reliable: Reliable, signum: int) -> None:
    source_record, sink_record = reliable.record("source"), reliable.record("sink")
    source = reliable.host.start_source("counter", reliable.unique(),
                                        config={"record": str(source_record), "interval": 0.01})
    sink = reliable.host.start_sink("recorder", reliable.unique(),
                                    config={"record": str(sink_record)})
    source.recv()
    sink.send(b'{"last": true}')
    wait_for(lambda: reliable.lines("sink") == ['{"last": true}'], 5, "the frame collected")
    process = reliable.host.process
    assert process is not None
    process.send_signal(signum)
    assert process.wait(timeout=2.0) == 0
    assert reliable.lines("source") == ["open", LOGGER, "close"]
    assert reliable.lines("sink") == ['{"last": true}', "closed"]


# 3. Restart and replay ----------------------------------------------------------------


def test_a_restarted_plugin_gets_every_start_replayed(reliable: Reliable) -> None:
    source = reliable.host.start_source("counter", reliable.unique(),
                                        config={"record": str(reliable.record("src")),
                                                "interval": 0.01})
    sink = reliable.host.start_sink("recorder", reliable.unique(),
                                    config={"record": str(reliable.record("sink")),
                                            "requireAck": True})
    echo = reliable.function("echo")
    assert echo.call(1)["args"] == [1]
    old_pid = reliable.host.pid
    reliable.host.kill()
    reliable.host.restart()
    assert reliable.host.pid != old_pid
    # The new process took over the channels the host kept.
    wait_for(lambda: reliable.lines("src").count("open") == 2, 5, "the source replayed")
    source.take(5)
    sink.send(b'{"after": "restart"}')  # acked, so it was collected by the new process
    assert reliable.lines("sink")[-1] == '{"after": "restart"}'
    assert echo.call(2)["args"] == [2]


def test_a_start_for_a_running_key_replaces_it_without_leaks(reliable: Reliable) -> None:
    rule = reliable.unique()
    record = reliable.record("sink")
    sink = reliable.host.start_sink("recorder", rule, config={"record": str(record)})
    sink.send(b'{"n": 0}')
    wait_for(lambda: reliable.lines("sink") == ['{"n": 0}'], 5, "the first frame")
    start = json.dumps({"cmd": "start", "arg": json.dumps({
        "symbolName": "recorder", "pluginType": "sink",
        "meta": {"ruleId": rule, "opId": "op1", "instanceId": 0},
        "config": {"record": str(record)}})}).encode()
    reliable.host.send_command(start)  # warm up: threads and sockets of one replacement
    tasks, fds = reliable.task_count(), reliable.fd_count()
    for _ in range(20):
        assert reliable.host.send_command(start) == b"ok"
    wait_for(lambda: reliable.lines("sink").count("closed") == 21, 5, "every old one closed")
    # Each replacement made 2 threads and 2 sockets, so a leak would leave 20 to 40 more;
    # nng itself varies by a descriptor or two (reconnecting dialers).
    wait_for(lambda: reliable.task_count() <= tasks + 2, 2, "the old threads ending")
    wait_for(lambda: reliable.fd_count() <= fds + 4, 2, "the old sockets closing")


# 4. User code that fails --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["source", "sink"])
def test_configure_failure_is_a_one_line_start_error(reliable: Reliable, kind: str) -> None:
    config = {"record": str(reliable.record("x")), "fail_configure": True}
    with pytest.raises(HostError) as caught:
        if kind == "source":
            reliable.host.start_source("counter", reliable.unique(), config=config)
        else:
            reliable.host.start_sink("recorder", reliable.unique(), config=config)
    text = str(caught.value)
    expected = ("configure failed: ValueError: the counter refuses this configuration"
                if kind == "source" else "configure failed: KeyError: \"missing setting 'url'\"")
    assert expected in text
    assert f"cannot start {kind} '" in text
    assert "Traceback" not in text
    # The traceback is in the plugin's log instead, and the plugin still serves.
    reliable.host.wait_output("Traceback")
    assert reliable.function("echo").call("ok?")["args"] == ["ok?"]


def test_exec_failure_is_a_failed_call_with_the_exception(reliable: Reliable) -> None:
    reply = reliable.function("boom").exec("x")
    assert reply.state is False
    assert reply.result == "ValueError: bad input 'x'"
    with pytest.raises(FunctionError, match="ValueError: bad input 3"):
        reliable.function("boom").call(3)
    assert reliable.function("echo").call("next")["args"] == ["next"]


def test_collect_failure_with_require_ack_is_an_ack_error(reliable: Reliable) -> None:
    sink = reliable.host.start_sink("recorder", reliable.unique(),
                                    config={"record": str(reliable.record("s")),
                                            "requireAck": True})
    with pytest.raises(SinkAckError, match=r"OSError: cannot write \{\"fail\": 1\}"):
        sink.send(b'{"fail": 1}')
    sink.send(b'{"ok": 2}')  # the next frame is collected and acked
    assert reliable.lines("s") == ['{"ok": 2}']


def test_explicit_ack_is_sent_once(reliable: Reliable) -> None:
    sink = reliable.host.start_sink("recorder", reliable.unique(),
                                    config={"record": str(reliable.record("s")),
                                            "requireAck": True, "explicit_ack": True})
    for i in range(5):
        sink.send(b'{"i": %d}' % i)  # each send waits for exactly one ack
    assert len(reliable.lines("s")) == 5


def test_open_and_close_failures_are_logged_and_harmless(reliable: Reliable) -> None:
    crashy = reliable.host.start_source("crashy", reliable.unique())
    # Reported to the rule as a frame eKuiper counts as the source's exception.
    with pytest.raises(InvalidFrameError) as reported:
        crashy.recv()
    assert reported.value.raw == b"source 'crashy' open failed: RuntimeError: open exploded"
    wait_for(lambda: any("open failed" in line for line in reliable.host.output), 5,
             "open's failure logged")
    crashy.stop(timeout=1.0)
    sink = reliable.host.start_sink("recorder", reliable.unique(),
                                    config={"record": str(reliable.record("s")),
                                            "fail_close": True})
    sink.stop(timeout=1.0)
    reliable.host.wait_output("close failed")
    reliable.host.wait_output("RuntimeError: close exploded")
    assert reliable.function("echo").call("alive")["args"] == ["alive"]


# 6. Output the host can read ----------------------------------------------------------


def test_emitted_values_follow_the_json_rules(reliable: Reliable) -> None:
    source = reliable.host.start_source("odd", reliable.unique(),
                                        config={"record": str(reliable.record("odd"))})
    first, second = source.take(2)
    assert first.message == {"nan": None, "inf": None, "raw": "AQI=", "7": "int key",
                             "set": [1, 2], "tuple": [1, 2]}
    assert second.message == {"after": True}
    assert reliable.lines("odd") == ["EncodeError: object is not JSON serializable"]


def test_function_results_follow_the_json_rules(reliable: Reliable) -> None:
    weird = reliable.function("weird")
    assert weird.exec("nan").result is None
    assert weird.exec("bytes").result == "aGk="
    reply = weird.exec("object")
    assert reply.state is False
    assert reply.result == "result cannot be sent to eKuiper: object is not JSON serializable"


def test_function_contexts_are_stable_per_call_site(reliable: Reliable) -> None:
    echo = reliable.function("echo")
    a1 = echo.call(1, rule_id="ra", func_id=0)
    a2 = echo.call(2, rule_id="ra", func_id=0)
    b = echo.call(3, rule_id="ra", func_id=1)
    assert a1["ctx"] == a2["ctx"] != b["ctx"]
    assert a1["rule"] == "ra"


# 7. Backpressure ----------------------------------------------------------------------


def resident_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_emit_blocks_then_raises_when_the_host_stops_reading(reliable: Reliable) -> None:
    assert reliable.host.pid is not None
    before_kib = resident_kib(reliable.host.pid)
    source = reliable.host.start_source("flood", reliable.unique(),
                                        config={"record": str(reliable.record("flood")),
                                                "size": 4096})
    source.pause_reading()
    wait_for(lambda: bool(reliable.lines("flood")), 10, "emit giving up")
    outcome = json.loads(reliable.lines("flood")[0])
    assert "did not read the source's data for 1 s (sendTimeout)" in outcome["error"]
    # The source kept emitting 4 KiB tuples until eKuiper's buffers and its own were full,
    # yet memory grew by little more than nng's bounded buffer (1,024 frames, 4 MiB):
    # nothing piles up in Python.
    assert outcome["sent"] > 1024
    assert outcome["rss_kib"] - before_kib < 32 * 1024


# 8. Local security --------------------------------------------------------------------


def test_sink_sockets_are_private_to_the_user(reliable: Reliable) -> None:
    rule = reliable.unique()
    reliable.host.start_sink("recorder", rule, config={"record": str(reliable.record("s"))})
    mode = os.stat(f"/tmp/{rule}_op1_0.ipc").st_mode & 0o777
    assert mode == 0o600


@pytest.mark.parametrize("field, value", [("ruleId", "{u}/escape"), ("opId", "a/../../{u}"),
                                          ("ruleId", "{u}\u0000cut")])
def test_names_that_would_leave_tmp_are_refused(reliable: Reliable, field: str,
                                                value: str) -> None:
    unique = reliable.unique()
    meta = {"ruleId": unique, "opId": "op1", "instanceId": 0}
    meta[field] = value.format(u=unique)
    answer = reliable.host.send_command(json.dumps({"cmd": "start", "arg": json.dumps({
        "symbolName": "recorder", "pluginType": "sink", "meta": meta,
        "config": {"record": str(reliable.record("s"))}})}).encode())
    assert b"cannot be used in a socket path" in answer
    assert not os.path.exists(f"/tmp/{unique}")
    assert not [p for p in os.listdir("/tmp") if unique in p]
