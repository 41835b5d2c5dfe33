"""The registry of running instances (runtime/control.py): loggers, instances side by
side, stops; real plugin processes over real IPC."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
from helpers import PLUGINS

from ekuiper_sdk.testing import PluginHost

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
