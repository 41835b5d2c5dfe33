"""The runtime under another host-side name (runtime/names.py): the sockets it uses carry
the suffix, and everything past the wire sees the code's names."""

from __future__ import annotations

import json

import pytest

from ekuiper_sdk.errors import ProtocolError
from ekuiper_sdk.runtime import names, protocol


def start_command(symbol: str, plugin_type: str) -> bytes:
    arg = json.dumps({"symbolName": symbol, "pluginType": plugin_type,
                      "meta": {"ruleId": "r", "opId": "o", "instanceId": 0}})
    return json.dumps({"cmd": "start", "arg": arg}).encode()


def test_without_a_suffix_the_names_are_the_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(names.SUFFIX_ENV, raising=False)
    assert protocol.control_url("pysam") == "ipc:///tmp/plugin_pysam.ipc"
    assert protocol.function_url("revert") == "ipc:///tmp/func_revert.ipc"


def test_a_suffix_moves_the_sockets_and_is_taken_off_incoming_names(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(names.SUFFIX_ENV, "_run7")
    assert protocol.control_url("pysam") == "ipc:///tmp/plugin_pysam_run7.ipc"
    assert protocol.function_url("revert") == "ipc:///tmp/func_revert_run7.ipc"
    func = protocol.decode_command(start_command("revert_run7", "func")).control
    assert func.symbol_name == "revert"
    # Sources and sinks keep their names: their sockets are named after the rule.
    sink = protocol.decode_command(start_command("print_run7", "sink")).control
    assert sink.symbol_name == "print_run7"
    assert protocol.sink_url(sink.meta) == "ipc:///tmp/r_o_0.ipc"


def test_a_suffix_that_would_leave_tmp_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(names.SUFFIX_ENV, "/../x")
    with pytest.raises(ProtocolError, match=names.SUFFIX_ENV):
        protocol.control_url("pysam")
