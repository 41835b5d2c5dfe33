"""The plugin runtime's own behaviour: arguments, logging, instances side by side."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pynng
import pytest
from helpers import PLUGINS

from ekuiper_sdk.hosts import HostGeneration
from ekuiper_sdk.runtime import channels
from ekuiper_sdk.runtime.control import HostOptions, parse_host_args
from ekuiper_sdk.testing import PluginHost, wait_for

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


@pytest.fixture
def host(plugin_host_factory: Callable[..., PluginHost],
         unique_name: Callable[[], str]) -> PluginHost:
    name = unique_name()
    return plugin_host_factory(name, PLUGIN, send_timeout_ms=700,
                               env={"PLUGIN_NAME": name, "FUNC_PREFIX": name + "_"})


def test_logger_is_a_logging_logger_naming_plugin_symbol_rule_op_instance(
        host: PluginHost, unique_name: Callable[[], str], tmp_path: Path) -> None:
    rule = unique_name()
    record = tmp_path / "record.txt"
    host.start_source("counter", rule, op_id="op7", instance_id=3,
                      config={"record": str(record), "interval": 0.05}).recv()
    assert record.read_text().splitlines()[1] == "logger: logging.Logger"
    expected = f"INFO {host.name}.counter rule={rule} op=op7 instance=3: counting for {rule}"
    assert host.wait_output(expected).endswith(expected)


def test_the_host_argument_reaches_the_runtime(host: PluginHost) -> None:
    assert "plugin " in host.wait_output("sendTimeout 700 ms")


def test_instances_of_one_symbol_run_side_by_side(host: PluginHost,
                                                  unique_name: Callable[[], str],
                                                  tmp_path: Path) -> None:
    rule = unique_name()
    config = {"record": str(tmp_path / "r.txt"), "interval": 0.01}
    first = host.start_source("counter", rule, instance_id=0, config=config)
    second = host.start_source("counter", rule, instance_id=1, config=config)
    other_rule = host.start_source("counter", unique_name(), config=config)
    for source in (first, second, other_rule):
        assert [t.message["n"] for t in source.take(3)] == [1, 2, 3]
    first.stop()
    # The others keep their own count going.
    n_second, n_other = second.recv().message["n"], other_rule.recv().message["n"]
    assert second.recv().message["n"] == n_second + 1
    assert other_rule.recv().message["n"] == n_other + 1


def test_stopping_twice_is_not_an_error_but_an_unknown_symbol_is(
        host: PluginHost, unique_name: Callable[[], str], tmp_path: Path) -> None:
    rule = unique_name()
    host.start_sink("recorder", rule, config={"record": str(tmp_path / "r.txt")}).stop()

    def stop(symbol: str) -> bytes:
        return host.send_command(json.dumps({"cmd": "stop", "arg": json.dumps({
            "symbolName": symbol, "pluginType": "sink",
            "meta": {"ruleId": rule, "opId": "op1", "instanceId": 0}})}).encode())

    assert stop("recorder") == b"ok"
    answer = stop("printer").decode()
    assert answer == (f"cannot stop sink 'printer' (rule '{rule}', op 'op1', instance 0): "
                      f"sink 'printer' is not defined in PluginConfig('{host.name}'); "
                      "defined sinks: recorder")


def test_a_plugin_started_by_hand_says_what_is_missing(unique_name: Callable[[], str]) -> None:
    name = unique_name()
    done = subprocess.run([sys.executable, str(PLUGIN)], capture_output=True, text=True,
                          timeout=30, env={"PLUGIN_NAME": name, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1
    assert (f"no eKuiper is listening at ipc:///tmp/plugin_{name}.ipc: a portable plugin is "
            "started by eKuiper (or by ekuiper_sdk.testing), not by hand") in done.stderr


def test_logging_is_left_alone_when_the_plugin_configured_it() -> None:
    from ekuiper_sdk.runtime.control import configure_logging

    root = logging.getLogger()
    handlers = list(root.handlers)
    configure_logging()  # pytest has installed its own handlers: they must stay the only ones
    assert root.handlers == handlers


# A quiet spell longer than the function channel's keepalive period.
QUIET_S = channels.IDLE_KEEPALIVE_MS / 1000 + 0.7


def test_start_and_stop_after_a_quiet_spell_hold_on_every_generation(
        host_generation: HostGeneration, plugin_host_factory: Callable[..., PluginHost],
        unique_name: Callable[[], str], tmp_path: Path) -> None:
    # Before 2.1.3 the host reads a queued keepalive as the answer to its next command;
    # two plugins, one per command, so that the two quiet spells pass at once.
    hosts = []
    for _ in range(2):
        name = unique_name()
        hosts.append(plugin_host_factory(name, PLUGIN, generation=host_generation,
                                         env={"PLUGIN_NAME": name, "FUNC_PREFIX": name + "_"}))
    starter, stopper = hosts
    echo = starter.function(starter.name + "_echo")
    assert echo.call(1)["args"] == [1]
    rule = unique_name()
    sink = stopper.start_sink("recorder", rule, config={"record": str(tmp_path / "s.txt")})
    time.sleep(QUIET_S)
    source = starter.start_source("counter", unique_name(),
                                  config={"record": str(tmp_path / "c.txt"), "interval": 0.01})
    assert source.recv().message["n"] == 1
    assert echo.call(2)["args"] == [2]  # the function channel's keepalive was skipped
    sink.stop()
    # Answered ok, and the plugin closed the instance (a misread answer would leave it).
    stopper.wait_output(f"stopped sink 'recorder' (rule {rule!r}")
    record = tmp_path / "s.txt"
    wait_for(lambda: record.exists() and record.read_text() == "closed\n", 5, "the close")


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
