"""runtime/sink.py's acks on every eKuiper generation: sent exactly while the host reads
them, and never a frame that waits out a send time-out when it does not."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers import PLUGINS

from ekuiper_sdk import hosts
from ekuiper_sdk.hosts import HostGeneration
from ekuiper_sdk.runtime.sink import ACK_BUFFER
from ekuiper_sdk.testing import HostError, PluginHost, wait_for
from ekuiper_sdk.testing.generation import sink_reads_acks

PLUGIN = PLUGINS / "reliable" / "reliable.py"
FRAMES = 600  # more than nng and the kernel buffer for acks nobody reads
UNREAD = "eKuiper does not read this sink's acks"


def start(factory: Callable[..., PluginHost], unique_name: Callable[[], str],
          generation: HostGeneration) -> PluginHost:
    name = unique_name()
    # A send time-out long enough that one frame waiting it out would show in the time.
    return factory(name, PLUGIN, generation=generation, send_timeout_ms=3000,
                   env={"PLUGIN_NAME": name, "FUNC_PREFIX": name + "_"})


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("props", [
    {"requireAck": True}, {"requiredACKs": 1}, {"requiredACKs": 1.0}, {"requireAck": False}, {},
], ids=["requireAck", "requiredACKs-int", "requiredACKs-json", "requireAck-false", "none"])
def test_every_frame_is_acked_when_the_host_reads_acks_and_none_waits_when_not(
        host_generation: HostGeneration, props: dict[str, Any],
        plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
        tmp_path: Path) -> None:
    host = start(plugin_host_factory, unique_name, host_generation)
    record = tmp_path / "sink.txt"
    sink = host.start_sink("recorder", unique_name(), config={"record": str(record), **props})
    reads = sink_reads_acks(host_generation, props)
    assert sink.require_ack is reads
    began = time.monotonic()
    for i in range(FRAMES):
        sink.send(b'{"i": %d}' % i)  # with acks read: waits for this frame's own ack
    wait_for(lambda: len(lines(record)) == FRAMES, 10, "every frame collected")
    elapsed = time.monotonic() - began
    assert lines(record) == ['{"i": %d}' % i for i in range(FRAMES)]
    assert elapsed < 3.0, f"{FRAMES} frames took {elapsed:.1f} s: an ack waited out its time-out"
    output = "\n".join(host.output)
    assert "could not send an ack" not in output
    if reads:
        with pytest.raises(HostError, match="no ack"):
            sink.recv_ack(timeout=0.3)  # exactly one ack per frame: none left over
        assert UNREAD not in output
    elif hosts.any_host_reads_acks(props):
        host.wait_output(UNREAD)  # it asked for acks another generation reads, then saw


def test_acks_nobody_reads_stop_when_they_fill_the_buffer(
        plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
        tmp_path: Path) -> None:
    # One frame at a time, each collected before the next is sent: the frames cannot show
    # that the host reads no acks, only the acks piling up can.
    host = start(plugin_host_factory, unique_name, hosts.V2)
    record = tmp_path / "sink.txt"
    sink = host.start_sink("recorder", unique_name(),
                           config={"record": str(record), "requiredACKs": 1})
    assert not sink.require_ack
    began = time.monotonic()
    for i in range(FRAMES + ACK_BUFFER):
        sink.send(b'{"i": %d}' % i)
        give_up = time.monotonic() + 5
        while len(lines(record)) <= i:
            assert time.monotonic() < give_up, f"frame {i} was not collected"
            time.sleep(0.0005)
    elapsed = time.monotonic() - began
    line = host.wait_output(UNREAD)
    assert f"({ACK_BUFFER} acks are waiting unread)" in line
    assert elapsed < 8.0, f"took {elapsed:.1f} s: acks waited out their send time-out"
    assert "could not send an ack" not in "\n".join(host.output)


def plugin_threads(host: PluginHost) -> int:
    assert host.pid is not None
    return len(os.listdir(f"/proc/{host.pid}/task"))


def test_idle_sinks_have_no_thread_and_many_stop_at_once_losing_nothing(
        plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
        tmp_path: Path) -> None:
    host = start(plugin_host_factory, unique_name, hosts.V2)
    first = host.start_sink("recorder", unique_name(), config={"record": str(tmp_path / "0")})
    first.send(b'{"warm": 1}')  # every pool thread has started once a frame went through
    wait_for(lambda: lines(tmp_path / "0") == ['{"warm": 1}'], 10, "the first frame")
    time.sleep(0.5)
    before = plugin_threads(host)
    sinks = [host.start_sink("recorder", unique_name(), config={"record": str(tmp_path / str(i))})
             for i in range(1, 51)]
    # Past the starts' own short-lived threads (each configure has one).
    wait_for(lambda: plugin_threads(host) <= before + 2, 10, "no thread per idle sink")
    for i, sink in enumerate(sinks, 1):
        for n in range(20):
            sink.send(b'{"s": %d, "n": %d}' % (i, n))
    # Stopped at once, frames still on their way: each is collected, then the sink closes.
    stoppers = [threading.Thread(target=sink.stop, kwargs={"timeout": 10}) for sink in sinks]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join(20)
    for i in range(1, 51):
        wanted = ['{"s": %d, "n": %d}' % (i, n) for n in range(20)] + ["closed"]
        wait_for(lambda i=i, wanted=wanted: lines(tmp_path / str(i)) == wanted,  # type: ignore[misc]
                 10, f"sink {i}'s frames, then its close")
    wait_for(lambda: plugin_threads(host) <= before + 4, 15, "the extra threads ended")


def test_a_stop_during_a_parked_wait_is_prompt_and_frees_the_socket(
        plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
        tmp_path: Path) -> None:
    host = start(plugin_host_factory, unique_name, hosts.V2)
    rule = unique_name()
    record = tmp_path / "sink.txt"
    sink = host.start_sink("recorder", rule, config={"record": str(record)})
    sink.send(b'{"i": 1}')
    wait_for(lambda: lines(record) == ['{"i": 1}'], 10, "the frame collected")
    time.sleep(0.3)  # the socket is parked now, with no thread
    began = time.monotonic()
    sink.stop(timeout=5)
    assert time.monotonic() - began < 1.0
    wait_for(lambda: lines(record)[-1:] == ["closed"], 10, "the sink closed")
    again = host.start_sink("recorder", rule, config={"record": str(record)})  # same URL
    again.send(b'{"i": 2}')
    wait_for(lambda: lines(record)[-1:] == ['{"i": 2}'], 10, "the restarted sink's frame")


def test_a_sink_whose_collect_blocks_leaves_the_others_receiving(
        plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
        tmp_path: Path) -> None:
    host = start(plugin_host_factory, unique_name, hosts.V2)
    slow = host.start_sink("recorder", unique_name(),
                           config={"record": str(tmp_path / "slow"), "delay": 4})
    slow.send(b'{"slow": 1}')
    time.sleep(0.3)  # its collect is sleeping now, on a pool thread
    others = [host.start_sink("recorder", unique_name(),
                              config={"record": str(tmp_path / str(i))}) for i in range(5)]
    began = time.monotonic()
    for i, sink in enumerate(others):
        sink.send(b'{"fast": %d}' % i)
    for i in range(5):
        wait_for(lambda i=i: lines(tmp_path / str(i)) == ['{"fast": %d}' % i], 3,  # type: ignore[misc]
                 "a fast sink's frame")
    assert time.monotonic() - began < 3.0
    assert lines(tmp_path / "slow") == []  # still inside its collect
    wait_for(lambda: lines(tmp_path / "slow") == ['{"slow": 1}'], 10, "the slow frame")
