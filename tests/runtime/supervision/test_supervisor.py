"""Supervision: a worker process that dies is replaced and every rule carries on.

Real plugin processes over real IPC: the plugin is ``tests/plugins/supervised``; the
process the host starts is the supervisor, and the function ``fragile`` tells which
worker answers (``pid``). Every test gives the plugin and its function names of its own.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pynng
import pytest
from helpers import PLUGINS

from ekuiper_sdk.testing import (
    FunctionError,
    HostError,
    PluginHost,
    SinkAckError,
    SinkHandle,
    SourceHandle,
    wait_for,
)

PLUGIN = PLUGINS / "supervised" / "supervised.py"
#: The issue's bound: from a worker's death to the rule's data flowing again. A spare
#: worker, started in advance, takes over (typically 20 to 200 ms on a loaded 2-core
#: machine), so no interpreter start is on the way.
RESUME_S = 2.0
#: How long a step may take before the test gives up; a step later than ``RESUME_S`` fails
#: with the supervisor's log of where the time went.
LATE_S = 10.0
#: How long a spare worker may take to start (an interpreter and the plugin's imports).
SPARE_READY_S = 30.0
#: The supervisor's lines that tell where a resume's time went, printed when it is late.
RESUME_STEPS = ("died after", "takes over", "restarting it in", "restored", "serves plugin",
                "starting (pid", "error ack")


class Supervised:
    def __init__(self, host: PluginHost, prefix: str, folder: Path,
                 unique: Callable[[], str]) -> None:
        self.host, self.prefix, self.folder, self.unique = host, prefix, folder, unique

    def fragile(self) -> Any:
        return self.host.function(self.prefix + "fragile")

    def worker_pid(self) -> int:
        pid = self.fragile().call("pid")
        assert isinstance(pid, int)
        return pid

    def death_lines(self) -> list[str]:
        return [line for line in self.host.output if " died after " in line]

    def death_line(self) -> str:
        """The one death reported; waits for it (the host reads the output on a thread of
        its own, which a loaded machine may run after the next worker already serves)."""
        self.host.wait_output(" died after ")
        [line] = self.death_lines()
        return line

    def spare_ready(self) -> None:
        """Wait until the spare worker that will take over is ready, as it is in steady
        state a moment after the plugin starts."""
        self.host.wait_output("is ready to take over", timeout=SPARE_READY_S)

    def check_resumed(self, since: float, what: str) -> None:
        """``what`` happened within ``RESUME_S`` of ``since`` (a ``time.time()`` taken just
        before the worker died); else fail with the supervisor's steps since then."""
        elapsed = time.time() - since
        if elapsed < RESUME_S:
            return
        stamp = time.strftime("%H:%M:%S", time.localtime(since)) + f",{int(since % 1 * 1000):03d}"
        steps = [line for line in self.host.output if any(step in line for step in RESUME_STEPS)]
        pytest.fail(f"{what} took {elapsed:.2f} s after the worker died at {stamp} (bound "
                    f"{RESUME_S:g} s); the supervisor's steps:\n" + "\n".join(steps[-12:]))


@pytest.fixture
def supervised(plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
               tmp_path: Path) -> Supervised:
    return start_supervised(plugin_host_factory, unique_name, tmp_path)


#: The call limit of the hung-call tests (``EKUIPER_SDK_CALL_LIMIT``).
CALL_LIMIT_S = 1.0


@pytest.fixture
def watched(plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
            tmp_path: Path) -> Supervised:
    return start_supervised(plugin_host_factory, unique_name, tmp_path,
                            EKUIPER_SDK_CALL_LIMIT=str(CALL_LIMIT_S))


def start_supervised(plugin_host_factory: Callable[..., PluginHost],
                     unique_name: Callable[[], str], tmp_path: Path,
                     **env: str) -> Supervised:
    name = unique_name()
    host = plugin_host_factory(name, PLUGIN, env={"PLUGIN_NAME": name, "FUNC_PREFIX": name + "_",
                                                  "EKUIPER_SDK_SUPERVISE": "1",
                                                  "EKUIPER_SDK_STATE_DIR": str(tmp_path), **env})
    return Supervised(host, name + "_", tmp_path, unique_name)


def counts_after(source: SourceHandle, old_pid: int, n: int, timeout: float) -> list[int]:
    """The counts the source sends until ``n`` came from a worker other than ``old_pid``
    (each within ``timeout``)."""
    seen: list[int] = []
    new = 0
    while new < n:
        message = source.recv(timeout=timeout).message
        seen.append(message["n"])
        new += message["pid"] != old_pid
    return seen


def assert_nothing_lost(counts: list[int]) -> None:
    # The source stores its count after each emit that succeeded, so a new worker may
    # repeat the last count or two, but never skips one eKuiper received.
    assert set(range(counts[0], counts[-1] + 1)) <= set(counts)


def test_a_killed_worker_is_replaced_and_every_instance_carries_on(
        supervised: Supervised) -> None:
    host = supervised.host
    sink_record = supervised.folder / "sink.txt"
    sink = host.start_sink("recorder", supervised.unique(),
                           config={"record": str(sink_record), "requireAck": True})
    source = host.start_source("counter", supervised.unique(), config={"interval": 0.01})
    source.take(3)
    old = supervised.worker_pid()
    assert old != host.pid
    sink.send(b'{"before": 1}')
    supervised.spare_ready()
    killed = time.time()
    os.kill(old, signal.SIGKILL)
    counts = counts_after(source, old, 1, timeout=LATE_S)
    supervised.check_resumed(killed, "the source's first record from the new worker")
    counts += counts_after(source, old, 2, timeout=RESUME_S)
    assert_nothing_lost(counts)
    assert supervised.worker_pid() not in (old, host.pid)
    sink.send(b'{"after": 1}')  # acked: the new worker collected it
    assert sink_record.read_text().splitlines() == ['{"before": 1}', '{"after": 1}']
    line = supervised.death_line()
    assert "killed by signal SIGKILL" in line and "source 'counter'" in line
    assert "sink 'recorder'" in line and "fragile" in line
    assert host.process is not None and host.process.poll() is None


def test_os_exit_inside_collect_is_healed(supervised: Supervised) -> None:
    host = supervised.host
    record = supervised.folder / "sink.txt"
    sink = host.start_sink("recorder", supervised.unique(),
                           config={"record": str(record), "requireAck": True})
    source = host.start_source("counter", supervised.unique(), config={"interval": 0.01})
    old = supervised.worker_pid()
    sink.send(b'{"n": 1}')
    supervised.spare_ready()
    sent = time.time()
    # The frame that ends the worker gets an error ack, as eKuiper needs one to go on.
    with pytest.raises(SinkAckError, match=r"worker process died \(exit code 3\) before this "
                       "frame was collected"):
        sink.send(b'{"n": "exit"}', ack_timeout=LATE_S)
    counts = counts_after(source, old, 1, timeout=LATE_S)
    supervised.check_resumed(sent, "the source's first record from the new worker")
    sink.send(b'{"n": 2}')
    supervised.check_resumed(sent, "the sink's next frame collected and acked")
    assert_nothing_lost(counts + counts_after(source, old, 2, timeout=RESUME_S))
    assert record.read_text().splitlines() == ['{"n": 1}', '{"n": 2}']
    line = supervised.death_line()
    assert ": exit code 3;" in line
    assert "sink 'recorder'" in line and "eKuiper got an error ack for it" in line


def test_a_sink_frame_lost_with_its_worker_gets_an_error_ack(supervised: Supervised) -> None:
    # With requireAck eKuiper sends the next frame only after the ack of the last one, so
    # a frame that dies with the worker must be answered, or the rule's sink waits for good.
    host = supervised.host
    record = supervised.folder / "sink.txt"
    sink = host.start_sink("recorder", supervised.unique(),
                           config={"record": str(record), "requireAck": True})
    sink.send(b'{"n": 1}')
    supervised.spare_ready()
    worker = supervised.worker_pid()
    answer: list[BaseException] = []
    sender = threading.Thread(target=lambda: _send_catching(sink, b'{"n": "sleep"}', answer))
    sender.start()
    wait_for(lambda: Path(str(record) + ".busy").exists(), 5.0, "collect to begin")
    killed = time.time()
    os.kill(worker, signal.SIGKILL)
    sender.join(LATE_S)
    [error] = answer
    supervised.check_resumed(killed, "the error ack of the frame being collected")
    assert isinstance(error, SinkAckError), error
    assert "worker process died (killed by signal SIGKILL) before this frame was collected" in (
        str(error))
    sink.send(b'{"n": 1.5}')  # what eKuiper's resendInterval would send instead
    supervised.check_resumed(killed, "the sink's next frame collected and acked")
    sink.send(b'{"n": 2}')
    assert record.read_text().splitlines() == ['{"n": 1}', '{"n": 1.5}', '{"n": 2}']
    line = supervised.death_line()
    assert "eKuiper got an error ack for it" in line


def test_frames_a_sink_had_not_collected_are_named_in_the_log(supervised: Supervised) -> None:
    host = supervised.host
    record = supervised.folder / "sink.txt"
    sink = host.start_sink("recorder", supervised.unique(), config={"record": str(record)})
    supervised.spare_ready()
    worker = supervised.worker_pid()
    sink.send(b'{"n": "sleep"}')
    wait_for(lambda: Path(str(record) + ".busy").exists(), 5.0, "collect to begin")
    os.kill(worker, signal.SIGKILL)
    line = host.wait_output(" died after ")
    assert "lost 1 frame(s) it had received but not collected" in line
    assert "error ack" not in line  # without requireAck eKuiper reads no acks


def _send_catching(sink: SinkHandle, frame: bytes, answer: list[BaseException]) -> None:
    try:
        sink.send(frame, ack_timeout=LATE_S)
    except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
        answer.append(exc)


def test_a_function_that_segfaults_answers_again(supervised: Supervised) -> None:
    fragile = supervised.fragile()
    old = supervised.worker_pid()
    supervised.spare_ready()
    called = time.time()
    # eKuiper sends a pending call again to the worker that takes over; that worker
    # answers it with an error rather than crash the same way.
    with pytest.raises(FunctionError, match=r"this call ended the plugin's worker process "
                       r"\(killed by signal SIGSEGV\); it is not run again"):
        fragile.call("segv")
    new = supervised.worker_pid()
    supervised.check_resumed(called, "the function answering again")
    assert new != old
    # The same input again (a source sending its record again) is refused too, not run.
    with pytest.raises(FunctionError, match="it is not run again"):
        fragile.call("segv")
    assert fragile.call("abc") == "ABC"
    assert supervised.worker_pid() == new
    line = supervised.death_line()
    assert "killed by signal SIGSEGV" in line and "running a call of function" in line
    assert "Fatal Python error: Segmentation fault" in line and "in exec" in line


def test_a_source_out_of_memory_under_rlimit_as_is_healed(supervised: Supervised) -> None:
    old = supervised.worker_pid()
    supervised.spare_ready()
    marker = supervised.folder / "died"
    source = supervised.host.start_source(
        "counter", supervised.unique(),
        config={"interval": 0.01, "die_at": 20, "die_by": "memory", "memory_mib": 64,
                "marker": str(marker)})
    counts = []
    while not counts or counts[-1] < 19:  # the records before the one that dies
        counts.append(source.recv(timeout=RESUME_S).message["n"])
    dying = time.time()  # the worker is allocating: it dies within moments
    counts += counts_after(source, old, 1, timeout=LATE_S)
    supervised.check_resumed(dying, "the source's first record from the new worker")
    counts += counts_after(source, old, 4, timeout=RESUME_S)
    assert marker.exists()
    assert_nothing_lost(counts)
    line = supervised.death_line()
    assert "exit code 12 (out of memory)" in line
    assert any("out of memory in open of source 'counter'" in out
               for out in supervised.host.output)


def test_a_crash_loop_is_refused_and_the_other_symbols_keep_serving(
        supervised: Supervised) -> None:
    host, rule = supervised.host, supervised.unique()
    assert supervised.fragile().call("a") == "A"
    for _ in range(3):
        with pytest.raises(HostError, match=r"cannot start source 'bomb' .*the plugin's worker "
                           r"process died while starting it \(exit code 7\)"):
            host.start_source("bomb", rule)
    with pytest.raises(HostError, match=r"died during each of its last 3 starts; stop and "
                       r"start the rule once the plugin is fixed"):
        host.start_source("bomb", rule)
    assert supervised.fragile().call("b") == "B"
    assert " died after " in host.wait_output("crash loop: 3 deaths in a row")


def test_the_worker_leaves_with_its_supervisor_even_after_sigkill(
        supervised: Supervised) -> None:
    worker = supervised.worker_pid()
    supervised.spare_ready()
    line = supervised.host.wait_output("is ready to take over")
    spare = int(line.split("(pid ")[1].split(")")[0])
    assert supervised.host.pid is not None
    os.kill(supervised.host.pid, signal.SIGKILL)
    for pid, which in ((worker, "the worker"), (spare, "the spare worker")):
        wait_for(lambda pid=pid: not os.path.exists(f"/proc/{pid}") or _zombie(pid), 2.0,
                 f"{which} exiting")


def test_sigterm_closes_the_workers_symbols_and_both_exit(supervised: Supervised) -> None:
    host = supervised.host
    record = supervised.folder / "sink.txt"
    host.start_sink("recorder", supervised.unique(), config={"record": str(record)})
    worker = supervised.worker_pid()
    assert host.process is not None
    host.process.send_signal(signal.SIGTERM)
    assert host.process.wait(timeout=3.0) == 0
    assert not os.path.exists(f"/proc/{worker}") or _zombie(worker)
    host.wait_output("closed after collecting")


def test_without_a_spare_a_new_worker_is_started_after_the_back_off(
        plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
        tmp_path: Path) -> None:
    name = unique_name()
    host = plugin_host_factory(name, PLUGIN, env={"PLUGIN_NAME": name, "FUNC_PREFIX": name + "_",
                                                  "EKUIPER_SDK_SUPERVISE": "1",
                                                  "EKUIPER_SDK_SPARE_WORKER": "0",
                                                  "EKUIPER_SDK_STATE_DIR": str(tmp_path)})
    supervised = Supervised(host, name + "_", tmp_path, unique_name)
    source = host.start_source("counter", unique_name(), config={"interval": 0.01})
    old = supervised.worker_pid()
    os.kill(old, signal.SIGKILL)
    assert_nothing_lost(counts_after(source, old, 3, timeout=LATE_S))
    line = supervised.death_line()
    assert line.endswith("restarting it in 0.1 s")
    assert not any("spare worker" in out for out in host.output)


def test_supervision_can_be_turned_off(plugin_host_factory: Callable[..., PluginHost],
                                       unique_name: Callable[[], str]) -> None:
    name = unique_name()
    host = plugin_host_factory(name, PLUGIN, env={"PLUGIN_NAME": name, "FUNC_PREFIX": name + "_",
                                                  "EKUIPER_SDK_SUPERVISE": "0"})
    assert host.function(name + "_fragile").call("pid") == host.pid


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1].startswith("Z")
    except OSError:
        return True


def test_no_other_process_gets_onto_the_workers_channel(supervised: Supervised) -> None:
    # The channel is an abstract socket, which any local process could dial: the kernel
    # lists its name. The supervisor refuses every peer but its worker.
    prefix = f"@ekuiper_sdk_{supervised.host.name}_"

    def channel_names() -> set[str]:
        with open("/proc/net/unix") as table:
            return {line.split()[-1] for line in table if prefix in line}

    # The supervisor opens the channel when it starts its worker, just after its handshake.
    wait_for(channel_names, 5.0, "the worker's channel")
    names = channel_names()
    intruder = pynng.Pair0(recv_timeout=300)
    try:
        intruder.dial("abstract://" + names.pop()[1:], block=False)
        wait_for(lambda: any("refused a connection to worker" in line
                             for line in supervised.host.output), 5.0, "the refusal")
        with pytest.raises(pynng.Timeout):
            intruder.recv()
    finally:
        intruder.close()
    assert supervised.fragile().call("still") == "STILL"


def test_a_function_stuck_for_good_is_healed_by_a_new_worker(watched: Supervised) -> None:
    fragile = watched.fragile()
    old = watched.worker_pid()
    watched.spare_ready()
    called = time.time()
    # The stuck call ends its worker once past the limit; eKuiper, still waiting, sends
    # it again to the next worker, which refuses it as a call that ended a worker.
    with pytest.raises(FunctionError, match=r"this call ended the plugin's worker process "
                       r"\(exit code 70 \(a call was stuck\)\); it is not run again"):
        fragile.call("hang")
    assert time.time() - called <= CALL_LIMIT_S + 1.0 + RESUME_S
    assert fragile.call("abc") == "ABC"  # the next calls are answered with results
    assert watched.worker_pid() != old
    assert time.time() - called <= CALL_LIMIT_S + 1.0 + RESUME_S
    text = "\n".join(watched.host.output)
    assert re.search(r"supervised\.py\", line \d+, in exec\n\s+time\.sleep\(3600\)", text)
    assert "this worker process exits and a fresh one takes over" in text
    line = watched.death_line()
    assert "exit code 70 (a call was stuck)" in line and "running a call of function" in line


def test_a_sink_collect_stuck_for_good_is_healed_and_its_frame_answered(
        watched: Supervised) -> None:
    host = watched.host
    record = watched.folder / "sink.txt"
    sink = host.start_sink("recorder", watched.unique(),
                           config={"record": str(record), "requireAck": True})
    sink.send(b'{"n": 1}')
    watched.spare_ready()
    sent = time.time()
    # The stuck frame is not acknowledged as written: eKuiper gets an error ack for it.
    with pytest.raises(SinkAckError, match=r"worker process died \(exit code 70 \(a call was "
                       r"stuck\)\) before this frame was collected"):
        sink.send(b'{"n": "hang"}', ack_timeout=LATE_S)
    sink.send(b'{"n": 2}')
    assert time.time() - sent <= CALL_LIMIT_S + 1.0 + RESUME_S
    sink.send(b'{"n": 3}')
    assert record.read_text().splitlines() == ['{"n": 1}', '{"n": 2}', '{"n": 3}']
    text = "\n".join(host.output)
    assert re.search(r"supervised\.py\", line \d+, in collect\n\s+time\.sleep\(3600\)", text)
    assert "eKuiper got an error ack for it" in watched.death_line()


def _context_switches(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/status") as status:
                    total += sum(int(line.split()[1]) for line in status
                                 if "ctxt_switches" in line)
            except OSError:
                pass  # a thread that ended meanwhile
    return total


def test_an_idle_supervised_plugin_is_never_woken(supervised: Supervised) -> None:
    # Supervisor, worker and spare each wait with no timer while nothing happens: a poll
    # of the worker link woke the worker and the spare five times a second each.
    supervised.spare_ready()
    worker = supervised.worker_pid()
    top = supervised.host.pid
    assert top is not None
    pids = [top]
    for task in os.listdir(f"/proc/{top}/task"):  # children of whichever thread spawned them
        with open(f"/proc/{top}/task/{task}/children") as kids:
            pids += [int(pid) for pid in kids.read().split()]
    assert worker in pids and len(pids) == 3  # the worker and the spare
    time.sleep(1.0)  # the last call's answer and log lines settle
    quiet = _context_switches(pids)
    time.sleep(3.0)
    assert _context_switches(pids) - quiet <= 2
