"""The sans-IO protocol layer: bytes in, values out, no sockets."""

from __future__ import annotations

import datetime
import json
import math
import uuid
from decimal import Decimal

import pytest

from ekuiper_sdk import errors
from ekuiper_sdk.errors import ProtocolError
from ekuiper_sdk.runtime import codec, protocol
from ekuiper_sdk.runtime.protocol import Command, Control, Meta


def wire_command(cmd: str, ctrl: dict) -> bytes:
    """A command exactly as the Go host encodes it: JSON text inside JSON."""
    return json.dumps({"cmd": cmd, "arg": json.dumps(ctrl)}).encode()


def test_decode_start_reads_datasource_with_capital_s_and_config() -> None:
    command = protocol.decode_command(wire_command("start", {
        "symbolName": "pyjson", "pluginType": "source",
        "meta": {"ruleId": "rule1", "opId": "op1", "instanceId": 2},
        "dataSource": "topic/a", "config": {"interval": 5}}))
    assert command.cmd == "start"
    assert command.control == Control("pyjson", "source", Meta("rule1", "op1", 2), "topic/a",
                                      {"interval": 5})
    assert command.control.key == "rule1_op1_2_pyjson"


def test_decode_omitted_datasource_and_config_default_to_empty() -> None:
    control = protocol.decode_command(wire_command("stop", {
        "symbolName": "print", "pluginType": "sink",
        "meta": {"ruleId": "r", "opId": "o", "instanceId": 0}})).control
    assert control.data_source == ""
    assert dict(control.config) == {}


def test_command_round_trip() -> None:
    original = Command("start", Control("s", "sink", Meta("r", "o", 3), "", {"requireAck": True}))
    assert protocol.decode_command(original.to_wire()) == original


@pytest.mark.parametrize("data, fragment", [
    (b"not json", "not JSON"),
    (b"\xff\xfe", "UTF-8"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"arg": "{}"}', "has no 'cmd'"),
    (b'{"cmd": 1, "arg": "{}"}', "'cmd' must be str"),
    (b'{"cmd": "restart", "arg": "{}"}', "unknown command 'restart'"),
    (b'{"cmd": "start"}', "has no 'arg'"),
    (b'{"cmd": "start", "arg": {"symbolName": "x"}}', "'arg' must be str"),
    (b'{"cmd": "start", "arg": "nope"}', "command arg is not JSON"),
    (b'{"cmd": "start", "arg": "[]"}', "arg must be a JSON object"),
    (b'{"cmd": "start", "arg": "{\\"symbolName\\": \\"x\\", \\"pluginType\\": \\"widget\\"}"}',
     "unknown pluginType 'widget'"),
    (b'{"cmd": "start", "arg": "{\\"pluginType\\": \\"sink\\"}"}', "has no 'symbolName'"),
    (b'{"cmd": "start", "arg": "{\\"symbolName\\": \\"a/b\\", \\"pluginType\\": \\"sink\\"}"}',
     "cannot be used in a socket path"),
    (b'{"cmd": "start", "arg": "{\\"symbolName\\": \\"s\\", \\"pluginType\\": \\"sink\\", '
     b'\\"meta\\": {\\"instanceId\\": \\"0\\"}}"}', "'instanceId' must be int"),
    (b'{"cmd": "start", "arg": "{\\"symbolName\\": \\"s\\", \\"pluginType\\": \\"sink\\", '
     b'\\"config\\": [1]}"}', "'config' must be an object"),
    (b"[" * 100000, "nested too deeply"),
])
def test_malformed_commands_are_refused_with_one_line(data: bytes, fragment: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        protocol.decode_command(data)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("meta, fragment", [
    (Meta("", "op", 0), "rule id is empty"),
    (Meta("r", "", 0), "op id is empty"),
    (Meta("../etc", "op", 0), "cannot be used in a socket path"),
    (Meta("r", "o\x00p", 0), "cannot be used in a socket path"),
])
def test_instance_urls_refuse_names_that_leave_tmp(meta: Meta, fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment):
        protocol.source_url(meta)


def test_urls_follow_the_host_naming() -> None:
    meta = Meta("rule1", "op1", 1)
    assert protocol.control_url("pysam") == "ipc:///tmp/plugin_pysam.ipc"
    assert protocol.function_url("revert") == "ipc:///tmp/func_revert.ipc"
    assert protocol.source_url(meta) == "ipc:///tmp/rule1_op1_1.ipc"
    assert protocol.sink_url(meta) == "ipc:///tmp/rule1_op1_1.ipc"
    assert protocol.sink_ack_url(meta) == "ipc:///tmp/rule1_op1_1_ack.ipc"


@pytest.mark.parametrize("text", ["handler not found", "h", "ok", "", "two\nlines\r\n",
                                  "x" * 5000, "  \n  "])
def test_control_answers_are_one_line_never_ok_never_h(text: str) -> None:
    answer = protocol.control_answer(text)
    assert answer != b"ok"
    assert not answer.startswith(b"h")
    assert b"\n" not in answer and b"\r" not in answer
    assert 0 < len(answer) <= protocol.MAX_ANSWER_CHARS


def test_control_answer_success_is_exactly_ok() -> None:
    assert protocol.control_answer() == b"ok"


def test_func_request_decoding() -> None:
    request = protocol.decode_func_request(b'{"func": "Exec", "arg": ["a", "{}"]}')
    assert request == protocol.FuncRequest("Exec", ["a", "{}"])
    assert protocol.decode_func_request(b'{"func": "IsAggregate", "arg": null}').arg is None
    with pytest.raises(ProtocolError, match="unknown function request 'Run'"):
        protocol.decode_func_request(b'{"func": "Run", "arg": []}')
    with pytest.raises(ProtocolError, match="Validate arg must be a list"):
        protocol.decode_func_request(b'{"func": "Validate", "arg": 3}')


def test_split_exec_arg_separates_the_call_site() -> None:
    ctx = json.dumps({"ruleId": "r1", "opId": "o1", "instanceId": 1, "funcId": 4})
    args, where = protocol.split_exec_arg(["abc", 2, ctx])
    assert args == ["abc", 2]
    assert where == protocol.FuncMeta(Meta("r1", "o1", 1), 4)
    with pytest.raises(ProtocolError, match="needs ruleId and opId"):
        protocol.split_exec_arg(["abc", json.dumps({"funcId": 1})])
    with pytest.raises(ProtocolError, match="must be a JSON string"):
        protocol.split_exec_arg(["abc", 5])
    with pytest.raises(ProtocolError, match="is empty"):
        protocol.split_exec_arg([])


def test_strict_json_rules() -> None:
    when = datetime.datetime(2024, 5, 6, 7, 8, 9)
    value = {
        "nan": math.nan, "inf": math.inf, "ninf": -math.inf, "bytes": b"\x00\x01",
        "when": when, "day": when.date(), "set": {3, 1, 2}, "tuple": (1, "a"),
        1: "int key", None: "null key", 2.5: "float key", "dec": Decimal("1.10"),
        "id": uuid.UUID(int=1),
    }
    decoded = json.loads(codec.dumps(value))
    assert decoded == {
        "nan": None, "inf": None, "ninf": None, "bytes": "AAE=",
        "when": "2024-05-06T07:08:09", "day": "2024-05-06", "set": [1, 2, 3],
        "tuple": [1, "a"], "1": "int key", "null": "null key", "2.5": "float key",
        "dec": "1.10", "id": "00000000-0000-0000-0000-000000000001",
    }


def test_output_is_never_invalid_json_for_go() -> None:
    encoded = codec.dumps({"x": [math.nan, {"y": math.inf}]})
    assert b"NaN" not in encoded and b"Infinity" not in encoded
    assert json.loads(encoded) == {"x": [None, {"y": None}]}


@pytest.mark.parametrize("value, fragment", [
    (object(), "object is not JSON serializable"),
    ({(1, 2): "tuple key"}, "tuple cannot be a JSON key"),
    ("\ud800", "not valid Unicode"),
])
def test_values_without_a_json_form_are_refused(value: object, fragment: str) -> None:
    with pytest.raises(errors.EncodeError, match=fragment):
        codec.dumps(value)


def test_func_reply_turns_an_unencodable_result_into_a_failed_reply() -> None:
    assert json.loads(protocol.func_reply(True, "olleh")) == {"state": True, "result": "olleh"}
    reply = json.loads(protocol.func_reply(True, object()))
    assert reply["state"] is False
    assert "cannot be sent to eKuiper" in reply["result"]


def test_encode_tuple_requires_a_dict_message() -> None:
    assert json.loads(protocol.encode_tuple({"a": 1})) == {"message": {"a": 1}, "meta": None}
    assert json.loads(protocol.encode_tuple({"a": 1}, {"topic": "t"}))["meta"] == {"topic": "t"}
    with pytest.raises(errors.EncodeError, match="must be a dict, got list"):
        protocol.encode_tuple([1, 2])
    with pytest.raises(errors.EncodeError, match="meta must be a dict or None"):
        protocol.encode_tuple({"a": 1}, "meta")


def test_acks() -> None:
    assert protocol.encode_ack() == b"{}"
    assert json.loads(protocol.encode_ack("disk\nfull")) == {"error": "disk | full"}


def test_describe_exception() -> None:
    assert protocol.exception_line(ValueError("bad value")) == "ValueError: bad value"
    assert protocol.exception_line(KeyError()) == "KeyError"


def test_datasource_comes_from_the_field_else_from_config() -> None:
    from ekuiper_sdk.runtime.protocol import decode_command

    def start(ctrl: dict) -> bytes:  # type: ignore[type-arg]
        base = {"symbolName": "s", "pluginType": "source", "meta": {"ruleId": "r", "opId": "o"}}
        return json.dumps({"cmd": "start", "arg": json.dumps({**base, **ctrl})}).encode()

    assert decode_command(start({"config": {"datasource": "t"}})).control.data_source == "t"
    assert decode_command(start({"dataSource": "f", "config": {"datasource": "t"}})
                          ).control.data_source == "f"
    assert decode_command(start({"config": {"datasource": 3}})).control.data_source == ""
    assert decode_command(start({})).control.data_source == ""


def test_validate_with_null_is_a_call_with_no_arguments() -> None:
    from ekuiper_sdk.runtime.protocol import decode_func_request

    assert decode_func_request(b'{"func":"Validate","arg":null}').arg == []
    with pytest.raises(ProtocolError, match="Exec arg must be a list, got NoneType"):
        decode_func_request(b'{"func":"Exec","arg":null}')
