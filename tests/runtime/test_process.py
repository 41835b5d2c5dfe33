"""One process's life (runtime/process.py), the same in every role: the host's argument,
logging, the refusal of a command, a plugin started by hand; real plugin processes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from typing import Callable

import pynng
import pytest
from helpers import PLUGINS

from ekuiper_sdk.runtime import channels
from ekuiper_sdk.runtime.process import HostOptions, parse_host_args
from ekuiper_sdk.testing import PluginHost

PLUGIN = PLUGINS / "reliable" / "reliable.py"


@pytest.mark.parametrize("argv, expected", [
    (["p.py"], HostOptions()),
    (["p.py", '{"sendTimeout": 250}'], HostOptions(send_timeout_ms=250)),
    (["p.py", '{"sendTimeout": 250, "newKey": [1]}'], HostOptions(send_timeout_ms=250)),
    (["p.py", "not json"], HostOptions()),
    (["p.py", '{"sendTimeout": -5}'], HostOptions()),
    (["p.py", '{"sendTimeout": "1000"}'], HostOptions()),
    (["p.py", '{"sendTimeout": true}'], HostOptions()),
    (["p.py", "[1000]"], HostOptions()),
])
def test_host_arguments_are_read_leniently(argv: list[str], expected: HostOptions) -> None:
    assert parse_host_args(argv) == expected


@pytest.fixture(params=["0", "1"], ids=["one process", "supervised"])
def host(request: pytest.FixtureRequest, plugin_host_factory: Callable[..., PluginHost],
         unique_name: Callable[[], str]) -> PluginHost:
    name = unique_name()
    return plugin_host_factory(name, PLUGIN, send_timeout_ms=700,
                               env={"PLUGIN_NAME": name, "FUNC_PREFIX": name + "_",
                                    "EKUIPER_SDK_SUPERVISE": request.param})


def test_the_host_argument_reaches_the_runtime(host: PluginHost) -> None:
    assert "plugin " in host.wait_output("sendTimeout 700 ms")


def test_every_role_refuses_a_command_in_the_same_words(host: PluginHost,
                                                       unique_name: Callable[[], str]) -> None:
    # The supervisor answers this one itself; the worker, the one below.
    assert host.send_command(b"{not json") == (
        b"invalid command: command is not JSON (Expecting property name enclosed in double "
        b"quotes: line 1 column 2 (char 1))")
    rule = unique_name()
    answer = host.send_command(json.dumps({"cmd": "start", "arg": json.dumps({
        "symbolName": "nosuch", "pluginType": "source",
        "meta": {"ruleId": rule, "opId": "op1", "instanceId": 0}})}).encode()).decode()
    assert answer == (f"cannot start source 'nosuch' (rule '{rule}', op 'op1', instance 0): "
                      f"source 'nosuch' is not defined in PluginConfig('{host.name}'); "
                      "defined sources: counter, crashy, flood, odd, stuck")


def test_a_plugin_started_by_hand_says_what_is_missing(unique_name: Callable[[], str]) -> None:
    name = unique_name()
    done = subprocess.run([sys.executable, str(PLUGIN)], capture_output=True, text=True,
                          timeout=30, env={"PLUGIN_NAME": name, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1
    assert (f"no eKuiper is listening at ipc:///tmp/plugin_{name}.ipc: a portable plugin is "
            "started by eKuiper (or by ekuiper_sdk.testing), not by hand") in done.stderr


def test_logging_is_left_alone_when_the_plugin_configured_it() -> None:
    from ekuiper_sdk.runtime.process import configure_logging

    root = logging.getLogger()
    handlers = list(root.handlers)
    configure_logging()  # pytest has installed its own handlers: they must stay the only ones
    assert root.handlers == handlers


# A quiet spell longer than the function channel's keepalive period.
QUIET_S = channels.IDLE_KEEPALIVE_MS / 1000 + 0.7


def test_the_control_channel_sends_nothing_unasked_and_a_gone_host_is_seen(
        unique_name: Callable[[], str]) -> None:
    name = unique_name()
    rep = pynng.Rep0(recv_timeout=int(QUIET_S * 1000))
    rep.listen(f"ipc:///tmp/plugin_{name}.ipc")
    plugin = subprocess.Popen([sys.executable, str(PLUGIN), '{"sendTimeout":1000}'],
                              env={**os.environ, "PLUGIN_NAME": name},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert rep.recv() == b"handshake"
        # Held, as a host does between commands: no keepalive comes, which a host before
        # 2.1.3 would take for the answer to its next command.
        with pytest.raises(pynng.Timeout):
            rep.recv()
        rep.close()  # the host is gone: the plugin notices without any keepalive
        out, _ = plugin.communicate(timeout=5)
    finally:
        rep.close()
        if plugin.poll() is None:
            plugin.kill()
            plugin.wait()
    assert plugin.returncode == 0
    stopped = [line for line in out.splitlines() if f"plugin {name} stopped: " in line]
    assert len(stopped) == 1 and "closed the control channel" in stopped[0], out
