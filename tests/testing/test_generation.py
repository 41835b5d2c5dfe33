"""testing/generation.py: the test host behaves like each eKuiper generation."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
from helpers import PLUGINS

from ekuiper_sdk import hosts
from ekuiper_sdk.hosts import HostGeneration
from ekuiper_sdk.testing import HostError, PluginHost, wait_for

PLUGIN = PLUGINS / "reliable" / "reliable.py"
OFFICIAL = PLUGINS / "official_style"


def start(factory: Callable[..., PluginHost], unique_name: Callable[[], str],
          generation: HostGeneration) -> PluginHost:
    name = unique_name()
    return factory(name, PLUGIN, generation=generation,
                   env={"PLUGIN_NAME": name, "FUNC_PREFIX": name + "_"})


def test_a_1x_host_runs_the_plugin_only_while_a_rule_uses_it(
        plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
        tmp_path: Path) -> None:
    host = start(plugin_host_factory, unique_name, hosts.V1)
    assert host.process is None  # not at start-up: when a rule first uses it
    sink = host.start_sink("recorder", unique_name(), config={"record": str(tmp_path / "a")})
    first = host.process
    assert first is not None and first.poll() is None
    sink.stop()
    wait_for(lambda: first.poll() is not None, 3, "the process killed after the last stop")
    host.start_sink("recorder", unique_name(), config={"record": str(tmp_path / "b")})
    assert host.process is not first and host.pid != first.pid


def test_a_2x_host_runs_the_plugin_from_start_up_to_the_end(
        plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
        tmp_path: Path) -> None:
    host = start(plugin_host_factory, unique_name, hosts.V2_EARLY)
    process = host.process
    assert process is not None
    host.start_sink("recorder", unique_name(), config={"record": str(tmp_path / "a")}).stop()
    with pytest.raises(AssertionError):
        wait_for(lambda: process.poll() is not None, 1.5, "the process ending")


@pytest.mark.parametrize("generation", hosts.GENERATIONS, ids=lambda g: g.name)
def test_a_sinks_rule_starts_again_on_every_generation(
        generation: HostGeneration, plugin_host_factory: Callable[..., PluginHost],
        unique_name: Callable[[], str], tmp_path: Path) -> None:
    # A 1.x host keeps listening on a stopped sink's ack socket; ours frees the path.
    host = start(plugin_host_factory, unique_name, generation)
    rule = unique_name()
    acks = {"requireAck": True} if generation.ack_property == "requireAck" else {"requiredACKs": 1}
    config = {"record": str(tmp_path / "s"), **acks}  # so send() returns once it is written
    host.start_sink("recorder", rule, config=config).stop()
    host.start_sink("recorder", rule, config=config).send(b"{}")
    assert (tmp_path / "s").read_text().splitlines() == ["closed", "{}"]


def test_on_1x_the_official_sdk_cannot_start_a_sinks_rule_again(
        official_sdk_python: str, plugin_host_factory: Callable[..., PluginHost],
        unique_name: Callable[[], str], tmp_path: Path) -> None:
    # What eKuiper 1.x does to every SDK that leaves the ack socket file alone (#3156).
    name = unique_name()
    host = plugin_host_factory(name, OFFICIAL / "main.py", python=official_sdk_python,
                               generation=hosts.V1,
                               env={"PLUGIN_NAME": name, "FUNCTION_SUFFIX": name})
    rule = unique_name()
    host.start_sink("file", rule).stop()
    with pytest.raises(Exception, match="(?i)address in use"):
        host.start_sink("file", rule)


def test_a_non_bool_require_ack_fails_the_start_on_2x_only(
        plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
        tmp_path: Path) -> None:
    config = {"record": str(tmp_path / "s"), "requireAck": "yes"}
    with pytest.raises(HostError, match="'requireAck' expected type 'bool'"):
        start(plugin_host_factory, unique_name, hosts.V2).start_sink(
            "recorder", unique_name(), config=config)
    sink = start(plugin_host_factory, unique_name, hosts.V1).start_sink(
        "recorder", unique_name(), config=config)
    assert sink.require_ack is False  # 1.x never looks at requireAck


@pytest.mark.parametrize("generation", hosts.GENERATIONS, ids=lambda g: g.name)
@pytest.mark.parametrize("framing", [{"batchSize": 3}, {"batchSize": 3, "sendSingle": True},
                                     {"lingerInterval": 100}])
def test_a_batch_is_framed_as_each_generation_frames_it(
        generation: HostGeneration, framing: dict[str, object],
        plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
        tmp_path: Path) -> None:
    # Seen on the real servers: 2.x sends a batch as one frame, each row in a list of its
    # own unless sendSingle; v1.14.7 frames a batch as it frames rows with no batching.
    host = start(plugin_host_factory, unique_name, generation)
    acks = {"requireAck": True} if generation.ack_property == "requireAck" else {"requiredACKs": 1}
    config = {"record": str(tmp_path / "s"), **acks, **framing}
    sink = host.start_sink("recorder", unique_name(), config=config)
    sink.send_rows([{"n": 1}, {"n": 2}, {"n": 3}])
    sink.stop()
    frames = [line for line in (tmp_path / "s").read_text().splitlines() if line != "closed"]
    single = framing.get("sendSingle") is True
    if generation.frames_batches:
        rows = '{"n":1},{"n":2},{"n":3}' if single else '[{"n":1}],[{"n":2}],[{"n":3}]'
        assert frames == [f"[{rows}]"]
    elif single:
        assert frames == ['{"n":1}', '{"n":2}', '{"n":3}']
    else:
        assert frames == ['[{"n":1},{"n":2},{"n":3}]']
