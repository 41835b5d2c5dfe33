"""Property-based: malformed control commands and function requests over real IPC.

Every strategy below builds input that is wrong by construction, so the plugin must refuse
each one with one readable line, and keep serving afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers import PLUGINS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ekuiper_sdk.testing import PluginHost

PLUGIN = PLUGINS / "reliable" / "reliable.py"
EXAMPLES = 1000  # per test: 2,000 malformed commands and function requests in all

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | \
    st.text(max_size=30)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) |
                           st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=20)
not_a_string = json_scalars.filter(lambda v: not isinstance(v, str)) | \
    st.lists(json_scalars, max_size=3) | st.dictionaries(st.text(max_size=5), json_scalars,
                                                         max_size=3)
deep = st.integers(min_value=200, max_value=5000).map(lambda n: b"[" * n + b"]" * n)
huge = st.integers(min_value=100_000, max_value=2_000_000).map(
    lambda n: json.dumps({"cmd": "start", "arg": "x" * n}).encode())
bad_utf8 = st.binary(min_size=1, max_size=40).map(lambda b: b'{"cmd": "\xff' + b + b'"}')


def command(cmd: Any, arg: Any) -> bytes:
    return json.dumps({"cmd": cmd, "arg": arg}).encode()


def control(**fields: Any) -> str:
    base: dict[str, Any] = {"symbolName": "recorder", "pluginType": "sink",
                            "meta": {"ruleId": "r", "opId": "o", "instanceId": 0}}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...})


bad_commands = st.one_of(
    st.binary(max_size=200).filter(lambda b: not b.strip().startswith(b"{")),
    json_values.filter(lambda v: not isinstance(v, dict)).map(lambda v: json.dumps(v).encode()),
    st.text(max_size=20).filter(lambda c: c not in ("start", "stop")).map(
        lambda c: command(c, control())),
    st.sampled_from(["start", "stop"]).flatmap(
        lambda c: not_a_string.map(lambda arg: command(c, arg))),
    st.sampled_from(["start", "stop"]).flatmap(
        lambda c: st.text(max_size=30).filter(lambda t: not t.strip().startswith("{")).map(
            lambda arg: command(c, arg))),
    st.text(max_size=12).filter(lambda t: t not in ("source", "sink", "func")).map(
        lambda t: command("start", control(pluginType=t))),
    st.text(min_size=1, max_size=12).filter(
        lambda s: s not in ("counter", "flood", "odd", "crashy", "recorder") and "/" not in s
        and "\x00" not in s).map(lambda s: command("start", control(symbolName=s))),
    not_a_string.map(lambda s: command("start", control(symbolName=s))),
    not_a_string.filter(lambda m: not isinstance(m, dict)).map(
        lambda m: command("start", control(meta=m))),
    st.sampled_from(["ruleId", "opId", "instanceId"]).flatmap(
        lambda key: st.lists(json_scalars, max_size=2).map(
            lambda v: command("start", control(meta={key: v})))),
    json_scalars.filter(lambda c: c is not None and c != {}).map(
        lambda c: command("start", control(config=c))),
    st.sampled_from(["start", "stop"]).map(lambda c: command(c, control(symbolName=...))),
    deep, huge, bad_utf8,
)

bad_requests = st.one_of(
    st.binary(max_size=200).filter(lambda b: not b.strip().startswith(b"{")),
    json_values.filter(lambda v: not isinstance(v, dict)).map(lambda v: json.dumps(v).encode()),
    st.text(max_size=20).filter(lambda f: f not in ("Validate", "Exec", "IsAggregate")).map(
        lambda f: json.dumps({"func": f, "arg": []}).encode()),
    not_a_string.map(lambda f: json.dumps({"func": f, "arg": []}).encode()),
    # A Validate with null is a call with no arguments (Go's nil slice), not bad input.
    st.sampled_from(["Validate", "Exec"]).flatmap(
        lambda f: json_scalars.filter(lambda a: not (f == "Validate" and a is None)).map(
            lambda a: json.dumps({"func": f, "arg": a}).encode())),
    st.lists(json_scalars, max_size=3).flatmap(lambda args: not_a_string.map(
        lambda ctx: json.dumps({"func": "Exec", "arg": args + [ctx]}).encode())),
    st.lists(json_scalars, max_size=3).flatmap(lambda args: st.text(max_size=20).filter(
        lambda t: not t.strip().startswith("{")).map(
        lambda ctx: json.dumps({"func": "Exec", "arg": args + [ctx]}).encode())),
    st.lists(json_scalars, max_size=3).map(lambda args: json.dumps(
        {"func": "Exec", "arg": args + [json.dumps({"funcId": 1})]}).encode()),
    deep, bad_utf8,
)


def assert_one_readable_error_line(answer: bytes) -> None:
    text = answer.decode("utf-8")  # raises on bytes that are not text
    assert answer != b"ok"
    assert not answer.startswith(b"h"), "the host would take this for a keepalive"
    assert "\n" not in text and "\r" not in text
    assert 0 < len(text) <= 1000


@pytest.fixture(scope="module")
def fuzz_host(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from ekuiper_sdk.pytest_plugin import make_unique_name

    name = make_unique_name()
    host = PluginHost(name, PLUGIN, env={"PLUGIN_NAME": name, "FUNC_PREFIX": name + "_"})
    host.start()
    yield host
    host.close()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=bad_commands)
def test_malformed_commands_get_one_error_line(fuzz_host: PluginHost, raw: bytes) -> None:
    assert_one_readable_error_line(fuzz_host.send_command(raw, timeout=10))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=bad_requests)
def test_malformed_function_requests_get_a_failed_reply(fuzz_host: PluginHost,
                                                         raw: bytes) -> None:
    echo = fuzz_host.function(fuzz_host.name + "_echo")
    reply = json.loads(echo.request(raw))
    assert reply["state"] is False
    assert isinstance(reply["result"], str) and reply["result"]
    assert "\n" not in reply["result"]


def test_the_plugin_still_serves_after_the_fuzzing(fuzz_host: PluginHost,
                                                   tmp_path: Path,
                                                   unique_name: Callable[[], str]) -> None:
    echo = fuzz_host.function(fuzz_host.name + "_echo")
    assert echo.call("fine")["args"] == ["fine"]
    sink = fuzz_host.start_sink("recorder", unique_name(),
                                config={"record": str(tmp_path / "r.txt"), "requireAck": True})
    sink.send(b'{"a": 1}')
    assert (tmp_path / "r.txt").read_text() == '{"a": 1}\n'
    assert fuzz_host.process is not None and fuzz_host.process.poll() is None
