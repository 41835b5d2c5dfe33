"""The registry of running instances (runtime/control.py): loggers, instances side by
side, stops; real plugin processes over real IPC."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import pytest
from helpers import PLUGINS

from ekuiper_sdk.hosts import HostGeneration
from ekuiper_sdk.runtime import channels
from ekuiper_sdk.testing import PluginHost, wait_for

PLUGIN = PLUGINS / "reliable" / "reliable.py"


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
