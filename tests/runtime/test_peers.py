"""Another local user gets nothing in and nothing out (docs/reliability.md, "Local security").

The other user is a real process running as ``nobody`` with raw SP-over-IPC clients
written with the standard library (tests/helpers/other_user.py); the plugin is the real
``reliable`` plugin over real sockets.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pynng
import pytest
from helpers import PLUGINS, other_user

from ekuiper_sdk.runtime import peers
from ekuiper_sdk.testing import PluginHost, wait_for

PLUGIN = PLUGINS / "reliable" / "reliable.py"
FORGED = "forged-by-another-user"

needs_other_user = pytest.mark.skipif(not other_user.CAN_RUN, reason=other_user.SKIP_REASON)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """umask 000, common in containers: files are made world-writable unless told not to."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def start_plugin(factory: Callable[..., PluginHost], name: str) -> PluginHost:
    return factory(name, PLUGIN, env={"PLUGIN_NAME": name, "FUNC_PREFIX": name + "_"})


@needs_other_user
def test_no_forged_frame_reaches_a_sink_started_and_stopped_under_umask_000(
        plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
        tmp_path: Path, permissive_umask: None) -> None:
    name = unique_name()
    host = start_plugin(plugin_host_factory, name)
    rule = name + "r"
    path = f"/tmp/{rule}_op1_0.ipc"
    record = tmp_path / "collected.txt"
    attacker = other_user.start(other_user.PUSHER, path, "4", FORGED)
    modes = set()
    for cycle in range(10):
        sink = host.start_sink("recorder", rule, config={"record": str(record)})
        modes.add(stat.S_IMODE(os.stat(path).st_mode))
        sink.send(f"real {cycle}".encode())
        sink.stop()
    counts = other_user.result(attacker)
    lines = record.read_text().splitlines()
    assert [line for line in lines if line.startswith("real")] == [
        f"real {n}" for n in range(10)]
    assert FORGED not in record.read_text()
    assert modes == {0o600}
    assert counts["connected"] + counts["refused"] > 100  # it did try, all along
    assert counts["handshakes"] == 0  # mode 0600 before listen: never even connected


@needs_other_user
def test_a_sink_socket_made_world_writable_still_serves_only_its_user(
        plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
        tmp_path: Path) -> None:
    # The file mode is one guard; the peer's uid, checked before the pipe is used, is
    # the other: a socket whose mode was loosened still collects nothing from a stranger.
    name = unique_name()
    host = start_plugin(plugin_host_factory, name)
    rule = name + "r"
    path = f"/tmp/{rule}_op1_0.ipc"
    record = tmp_path / "collected.txt"
    sink = host.start_sink("recorder", rule, config={"record": str(record)})
    os.chmod(path, 0o777)
    counts = other_user.result(other_user.start(other_user.PUSHER, path, "1", FORGED))
    sink.send(b"real")
    wait_for(lambda: record.exists() and "real" in record.read_text(), timeout=5)
    sink.stop()
    assert counts["connected"] > 10
    assert FORGED not in record.read_text()
    refusals = [line for line in host.output if "refused a connection to the sink's data "
                f"socket from uid {other_user.OTHER_UID}" in line]
    assert len(refusals) == 1, host.output_tail()  # the rest are counted, not logged


@needs_other_user
def test_a_stranger_who_binds_a_stopped_rules_path_gets_no_record(
        plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
        tmp_path: Path) -> None:
    # eKuiper closes its PULL socket at a rule stop and sends stop later; the source's
    # dialer redials meanwhile. Whoever binds the path then must get nothing.
    name = unique_name()
    host = start_plugin(plugin_host_factory, name)
    rule = name + "r"
    src = host.start_source("counter", rule, config={"record": str(tmp_path / "c.txt"),
                                                     "interval": 0.001})
    src.take(5)
    src.detach()  # the host's socket closes; no stop yet
    attacker = other_user.start(other_user.PULLER, f"/tmp/{rule}_op1_0.ipc", "2")
    assert other_user.line(attacker) == {"bound": True}
    counts = other_user.result(attacker)
    host.send_control("stop", src.control, None)
    assert counts["accepted"] >= 1  # the source's dialer did connect to it...
    assert counts["records"] == 0  # ...and sent nothing
    assert any(f"refused a connection to the source's data channel from uid "
               f"{other_user.OTHER_UID}" in line for line in host.output)


def test_listen_private_makes_the_file_0600_whatever_the_umask(
        unique_name: Callable[[], str], permissive_umask: None) -> None:
    url = f"ipc:///tmp/{unique_name()}.ipc"
    with pynng.Pull0() as sock:
        peers.listen_private(sock, url)
        assert stat.S_IMODE(os.stat(url[len("ipc://"):]).st_mode) == 0o600
        assert len(sock.listeners) == 1
        with pynng.Push0(dial=url) as push:  # the own user is served
            push.send(b"mine")
            assert sock.recv() == b"mine"


def test_a_socket_path_too_long_for_the_os_names_the_path_and_the_fix() -> None:
    url = "ipc:///tmp/" + "r" * 120 + "_op1_0.ipc"
    with pynng.Pull0() as sock, pytest.raises(ValueError) as info:
        peers.listen_private(sock, url)
    assert "r" * 120 in str(info.value)
    assert "more than the 107 a Unix socket allows: use shorter rule" in str(info.value)
    assert not os.path.exists(url[len("ipc://"):])


def abstract_names(prefix: str) -> list[str]:
    """The Linux abstract socket names that start with ``prefix``, as ``@name``."""
    with open("/proc/net/unix") as table:
        return sorted({fields[-1] for fields in (line.split() for line in table)
                       if fields[-1].startswith("@" + prefix)})


@needs_other_user
def test_the_supervised_worker_link_refuses_another_user_with_one_log_line(
        plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
        tmp_path: Path) -> None:
    # An abstract socket has no file mode: anyone who reads /proc/net/unix can connect.
    name = unique_name()
    host = plugin_host_factory(name, PLUGINS / "supervised" / "supervised.py",
                               env={"PLUGIN_NAME": name, "FUNC_PREFIX": name + "_",
                                    "EKUIPER_SDK_SUPERVISE": "1",
                                    "EKUIPER_SDK_STATE_DIR": str(tmp_path)})
    fragile = host.function(name + "_fragile")
    pid = fragile.call("pid")
    links = abstract_names(f"ekuiper_sdk_{name}_")
    assert links, "the supervisor listens for its workers on an abstract socket"
    counts = other_user.result(other_user.start(
        other_user.PUSHER, links[0], "20", "x", str(other_user.PAIR), "300"))
    assert counts["connected"] == 300
    assert fragile.call("pid") == pid  # the worker was not disturbed
    refused = [line for line in host.output if "refused a connection" in line]
    assert len(refused) == 1, refused[:5]
    assert f"from uid {other_user.OTHER_UID}" in refused[0]
