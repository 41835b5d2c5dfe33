"""The Python host of ekuiper_sdk.testing, proven against real plugin processes over real IPC.

Behaviour tests run the official-style plugin in tests/plugins/official_style on the
official ``ekuiper`` SDK, and on ekuiper_sdk once its runtime is there: the same plugin
files, with the import line rewritten. Where the official SDK is known to be wrong
(docs/migrating.md), a test asserts what it does and what ekuiper_sdk must do instead.
The host's own rules (keepalive, recovery, hand-shake failures) are checked with a tiny
fake plugin written with bare pynng.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

import pytest
from helpers import PLUGINS

from ekuiper_sdk.hosts import HostGeneration
from ekuiper_sdk.testing import (
    FuncReply,
    FunctionError,
    HostError,
    InvalidFrameError,
    PluginHost,
    SinkAckError,
    SourceConfigWarning,
    SourceTuple,
    decode_source_frame,
    go_json_dumps,
    run_pipeline,
    wait_for,
)

PLUGIN_SRC = PLUGINS / "official_style"
IMPORT_LINE = "from ekuiper import "


def file_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.exists() else []


# ---------------------------------------------------------------------------
# fixtures


@pytest.fixture(autouse=True)
def no_socket_file_left() -> Iterator[None]:
    """Every name this process makes holds its pid: none may be left in /tmp after a test."""
    yield
    mark = f"{os.getpid()}_"
    left = [p for p in os.listdir("/tmp") if p.endswith(".ipc") and mark in p]
    assert left == [], "socket files left behind"


def test_unique_names(unique_name: Callable[..., str]) -> None:
    names = {unique_name() for _ in range(100)}
    assert len(names) == 100
    assert all(n.startswith(f"t{os.getpid()}_") for n in names)
    assert unique_name("r").startswith("r")


@pytest.fixture(params=["ekuiper", "ekuiper_sdk"])
def sdk(request: pytest.FixtureRequest) -> str:
    """Which SDK the test plugin imports."""
    return str(request.param)


@pytest.fixture
def python(sdk: str, request: pytest.FixtureRequest) -> str:
    """The interpreter that runs the plugin: the official SDK has an environment of its own."""
    if sdk == "ekuiper":
        return str(request.getfixturevalue("official_sdk_python"))
    return sys.executable


@pytest.fixture
def plugin_dir(sdk: str, tmp_path: Path) -> Path:
    """A copy of the official-style plugin importing ``sdk``."""
    dest = tmp_path / "plugin"
    shutil.copytree(PLUGIN_SRC, dest)
    if sdk != "ekuiper":
        rewritten = 0
        for script in dest.glob("*.py"):
            text = script.read_text()
            rewritten += text.count(IMPORT_LINE)
            script.write_text(text.replace(IMPORT_LINE, f"from {sdk} import "))
        assert rewritten == 4, "each of the four modules imports the SDK once"
    return dest


@pytest.fixture
def suffix(unique_name: Callable[..., str]) -> str:
    """Appended to the plugin's function names: /tmp/func_<name>.ipc is shared by all."""
    return "_" + unique_name("")


@pytest.fixture
def fn(suffix: str) -> Callable[[str], str]:
    """The name this test's plugin gives a function: ``fn("revert")``."""
    return lambda base: base + suffix


@pytest.fixture
def host(plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[..., str],
         plugin_dir: Path, suffix: str, python: str) -> PluginHost:
    name = unique_name("p")
    return plugin_host_factory(name, plugin_dir / "main.py", python=python,
                               env={"PLUGIN_NAME": name, "FUNCTION_SUFFIX": suffix})


# ---------------------------------------------------------------------------
# the official-style plugin on each SDK


def test_handshake_and_close(host: PluginHost) -> None:
    control_path = host.control_url[len("ipc://"):]
    assert host.process is not None and host.process.poll() is None
    assert host.pid == host.process.pid
    assert os.path.exists(control_path)
    host.close()
    assert host.process.poll() is not None, "close kills the plugin"
    assert not os.path.exists(control_path), "close removes the control socket file"


def test_source_tuples_meta_and_config(host: PluginHost, sdk: str,
                                       unique_name: Callable[..., str]) -> None:
    src = host.start_source("pyjson", unique_name("r"), datasource="topic/a",
                            config={"tag": "T1", "interval": 0.01})
    items = src.take(3)
    assert [t.meta for t in items] == [{"seq": 0}, {"seq": 1}, {"seq": 2}]
    for seq, item in enumerate(items):
        assert item.message is not None
        assert item.message["name"] == "pyjson" and item.message["seq"] == seq
        assert item.message["tag"] == "T1", "the config reaches configure()"
        assert json.loads(item.raw)["message"] == item.message
    datasource = items[0].message["datasource"] if items[0].message else None
    if sdk == "ekuiper":
        # Defect: the official SDK reads a "datasource" field of the command, which no host
        # fills; a v2 host sends DATASOURCE inside config.
        assert datasource == ""
    else:
        assert datasource == "topic/a"
    url_path = src.url[len("ipc://"):]
    assert os.path.exists(url_path)
    src.stop()
    assert not os.path.exists(url_path), "stop closes the host's PULL socket"


@pytest.mark.parametrize("data_source_field", [False, True])
def test_datasource_reaches_configure_from_either_form(host: PluginHost, sdk: str,
                                                       unique_name: Callable[..., str],
                                                       data_source_field: bool) -> None:
    """A v2 host sends DATASOURCE in config only; older hosts filled dataSource too."""
    src = host.start_source("pyjson", unique_name("r"), datasource="topicX",
                            config={"interval": 0.01}, data_source_field=data_source_field)
    message = src.recv().message
    assert message is not None
    assert message["datasource"] == ("" if sdk == "ekuiper" else "topicX")
    src.stop()


def test_source_error_and_nan_frames(host: PluginHost, sdk: str,
                                     unique_name: Callable[..., str]) -> None:
    src = host.start_source("pyjson", unique_name("r"),
                            config={"emit_error": True, "nan": True, "interval": 0.01})
    if sdk == "ekuiper":
        # emit_error sends {"error": ...}: eKuiper v2 reads it as a tuple with no message.
        first = src.recv()
        assert first.message is None and json.loads(first.raw) == {"error": "bad reading"}
        # NaN is written as a bare NaN, which Go's decoder refuses.
        with pytest.raises(InvalidFrameError, match="Invalid data format") as err:
            src.recv()
        assert b"NaN" in err.value.raw
    else:
        # The error goes as a frame eKuiper cannot decode: it counts it as the source's
        # exception and shows the text (seen on eKuiper v2.4). NaN reaches the host as null.
        with pytest.raises(InvalidFrameError, match="^Invalid data format, cannot decode "
                                                    "source 'pyjson' error: bad reading to "
                                                    "json format") as err:
            src.recv()
        assert err.value.raw == b"source 'pyjson' error: bad reading"
        first = src.recv()
        assert first.message is not None and first.message["seq"] == 0
        assert first.message["x"] is None
    src.stop()


def test_source_backpressure(host: PluginHost, sdk: str, unique_name: Callable[..., str]) -> None:
    src = host.start_source("pyjson", unique_name("r"), config={"interval": 0.001})
    src.pause_reading()
    time.sleep(0.5)             # shorter than the plugin's sendTimeout (1 s)
    src.resume_reading()
    seqs = [t.message["seq"] for t in src.take(400, timeout=10) if t.message]
    assert seqs == list(range(400)), "a stalled host loses and reorders nothing"
    if sdk == "ekuiper":
        # Defect: a host that reads nothing for longer than sendTimeout makes emit raise
        # pynng.Timeout in the official SDK, which ends the source for good.
        src.pause_reading()
        time.sleep(2.0)
        src.resume_reading()
        while True:
            try:
                src.recv(timeout=1.0)
            except HostError:
                break
        host.wait_output("Timeout")
    src.stop()


def test_sink_frames_reach_collect(host: PluginHost, unique_name: Callable[..., str],
                                   tmp_path: Path) -> None:
    out = tmp_path / "sink.out"
    sink = host.start_sink("file", unique_name("r"), config={"path": str(out)})
    sink.send({"b": 1.0, "a": "x<y"})
    sink.send([{"a": 1}, {"a": 2}])
    sink.send(b"raw \xff bytes")
    wait_for(lambda: len(file_lines(out)) == 3, what="three collected frames")
    assert file_lines(out) == [b'{"a":"x\\u003cy","b":1}', b'[{"a":1},{"a":2}]',
                               b"raw \xff bytes"]
    data_path = sink.url[len("ipc://"):]
    sink.stop()
    assert not os.path.exists(sink.ack_url[len("ipc://"):])
    wait_for(lambda: not os.path.exists(data_path), what="the plugin to close its listener")


def test_sink_require_ack(host: PluginHost, unique_name: Callable[..., str],
                          tmp_path: Path) -> None:
    out = tmp_path / "sink.out"
    sink = host.start_sink("file", unique_name("r"),
                           config={"path": str(out), "requireAck": True})
    assert sink.require_ack
    sink.send({"n": 1})
    with pytest.raises(SinkAckError) as err:
        sink.send({"fail": "disk full"})
    assert err.value.text == "disk full"
    sink.send({"n": 2})
    assert len(file_lines(out)) == 3, "with requireAck, send returns after collect"
    sink.stop()
    with pytest.raises(HostError, match="requireAck"):
        host.start_sink("file", unique_name("r"), config={"requireAck": "yes"})


def test_functions(host: PluginHost, sdk: str, fn: Callable[[str], str]) -> None:
    revert = host.function(fn("revert"))
    assert host.function(fn("revert")) is revert, "one channel per function name"
    assert revert.exec("abc") == FuncReply(True, "cba")
    assert revert.call("héllo", rule_id="r9", func_id=3) == "olléh"
    assert revert.validate(["a"]).state is True
    assert revert.validate(["a", "b"]) == FuncReply(False, "revert takes exactly one argument")
    assert revert.is_aggregate() is False

    agg = host.function(fn("agg_sum"))
    assert agg.is_aggregate() is True
    assert agg.call([1, 2, 3.5]) == 6.5

    with pytest.raises(FunctionError) as err:
        host.function(fn("boom")).call(1, rule_id="rb")
    text = str(err.value.result)
    assert "boom: [1] in rule rb" in text
    if sdk == "ekuiper":
        assert text.startswith("Traceback") and "\n" in text   # defect: whole traceback
    else:
        assert "\n" not in text and not text.startswith("Traceback")

    if sdk == "ekuiper":
        # Defect: NaN written as a bare NaN, which eKuiper cannot decode.
        with pytest.raises(HostError, match="Failed to unmarshal function result"):
            host.function(fn("nan")).call()
    else:
        assert host.function(fn("nan")).call() is None


def test_stop_and_start_again(host: PluginHost, unique_name: Callable[..., str]) -> None:
    rule = unique_name("r")
    src = host.start_source("pyjson", rule, config={"tag": "first", "interval": 0.01})
    assert src.recv().message is not None
    assert len(host.registered_commands) == 1
    src.stop()
    assert host.registered_commands == [], "a stopped symbol is not replayed"
    again = host.start_source("pyjson", rule, config={"tag": "second", "interval": 0.01})
    deadline = time.monotonic() + 5
    while True:     # a frame the old instance sent while stopping may still come in
        item = again.recv(max(0.0, deadline - time.monotonic()))
        if item.message and item.message["tag"] == "second":
            break
    assert item.message["seq"] == 0, "a new source instance"
    again.stop()


def test_two_rules_at_once(host: PluginHost, unique_name: Callable[..., str]) -> None:
    a = host.start_source("pyjson", unique_name("a"), config={"tag": "A", "interval": 0.01})
    b = host.start_source("pyjson", unique_name("b"), config={"tag": "B", "interval": 0.01})
    tags_a = {t.message["tag"] for t in a.take(5) if t.message}
    tags_b = {t.message["tag"] for t in b.take(5) if t.message}
    assert (tags_a, tags_b) == ({"A"}, {"B"})
    assert len(host.registered_commands) == 2
    a.stop()
    b.stop()


def test_kill_and_restart_replays(host: PluginHost, unique_name: Callable[..., str],
                                  tmp_path: Path, fn: Callable[[str], str]) -> None:
    out = tmp_path / "sink.out"
    rule = unique_name("r")
    src = host.start_source("pyjson", rule, op_id="src", config={"interval": 0.01})
    sink = host.start_sink("file", rule, op_id="sink", config={"path": str(out)})
    revert = host.function(fn("revert"))
    assert src.recv().message is not None
    sink.send({"before": 1})
    assert revert.call("ab") == "ba"
    old_pid = host.pid

    host.kill()
    assert host.process is not None and host.process.poll() is not None
    host.restart()
    assert host.pid != old_pid and host.process.poll() is None

    deadline = time.monotonic() + 5
    while True:     # tuples read before the kill may be queued: wait for the new instance
        item = src.recv(max(0.0, deadline - time.monotonic()))
        if item.message and item.message["seq"] == 0:
            break
    sink.send({"after": 2})
    wait_for(lambda: b'{"after":2}' in file_lines(out), what="the replayed sink to collect")
    assert revert.call("cd") == "dc"
    # The replayed instances keep their handles: a second start of the same instance is
    # one line that says so, not nng's AddressInUse.
    for again in (lambda: host.start_source("pyjson", rule, op_id="src"),
                  lambda: host.start_sink("file", rule, op_id="sink")):
        with pytest.raises(HostError, match="already has a running handle") as refused:
            again()
        assert "\n" not in str(refused.value)
    src.stop()
    sink.stop()
    src = host.start_source("pyjson", rule, op_id="src", config={"interval": 0.01})
    assert src.recv().message is not None
    src.stop()


def test_replay_keeps_one_function_like_ekuiper(plugin_host_factory: Callable[..., PluginHost],
                                                unique_name: Callable[..., str],
                                                plugin_dir: Path, sdk: str, suffix: str,
                                                fn: Callable[[str], str], python: str) -> None:
    name = unique_name("p")
    host = plugin_host_factory(name, plugin_dir / "main.py", function_timeout=1.0, python=python,
                               env={"PLUGIN_NAME": name, "FUNCTION_SUFFIX": suffix})
    revert, agg = host.function(fn("revert")), host.function(fn("agg_sum"))
    assert revert.call("ab") == "ba" and agg.call([1]) == 1
    # eKuiper keys start commands by meta, empty for every function: the last one wins.
    commands = [json.loads(json.loads(c)["arg"]) for c in host.registered_commands]
    assert [c["symbolName"] for c in commands] == [fn("agg_sum")]
    host.kill()
    host.restart()
    assert agg.call([2, 3]) == 5
    if sdk == "ekuiper":
        with pytest.raises(HostError, match="time out"):
            revert.call("ab")
    else:
        # ekuiper_sdk rejoins every declared function whose socket eKuiper still serves.
        assert revert.call("ab") == "ba"


def test_dead_plugin_restarts_on_next_start(host: PluginHost,
                                            unique_name: Callable[..., str]) -> None:
    first = host.start_source("pyjson", unique_name("r"), config={"tag": "1", "interval": 0.01})
    first.recv()
    old_pid = host.pid
    host.kill()
    second = host.start_source("pyjson", unique_name("r"), config={"tag": "2", "interval": 0.01})
    assert host.pid != old_pid, "like eKuiper, the next start brings the plugin back"
    assert second.recv().message["tag"] == "2"      # type: ignore[index]
    deadline = time.monotonic() + 5
    while True:
        item = first.recv(max(0.0, deadline - time.monotonic()))
        if item.message and item.message["seq"] == 0:
            break                                   # the first source was replayed
    first.stop()
    second.stop()


def test_close_after_a_crash_cleans_up(host: PluginHost,
                                       unique_name: Callable[..., str]) -> None:
    sink = host.start_sink("file", unique_name("r"))
    data_path = sink.url[len("ipc://"):]
    host.kill()
    assert os.path.exists(data_path), "a killed plugin leaves its listening socket file"
    host.close()
    assert not os.path.exists(data_path)
    with pytest.raises(HostError, match="is closed"):
        host.start_source("pyjson", unique_name("r"))


def test_bad_commands(host: PluginHost, sdk: str, unique_name: Callable[..., str]) -> None:
    answer = host.send_command(b'{"cmd":"bogus","arg":"{}"}')
    if sdk == "ekuiper":
        assert answer == b"ok"          # defect: an unknown command is accepted
    else:
        assert answer != b"ok" and not answer.startswith(b"h") and b"\n" not in answer
    rule = unique_name("r")
    with pytest.raises(HostError, match="^receive error: ") as err:
        host.start_source("nosuch", rule)
    if sdk == "ekuiper":
        assert "Traceback" in str(err.value)
    else:
        assert "\n" not in str(err.value)
    assert not os.path.exists(f"/tmp/{rule}_op1_0.ipc"), "a failed start closes its socket"
    assert host.registered_commands == []
    # The plugin still serves commands after those errors.
    assert host.start_source("pyjson", rule).recv().message is not None


def test_run_pipeline(plugin_dir: Path, unique_name: Callable[..., str], tmp_path: Path,
                      suffix: str, fn: Callable[[str], str], python: str, sdk: str) -> None:
    name = unique_name("p")
    manifest = json.loads((plugin_dir / "official_style.json").read_text())
    manifest["functions"] = [fn(base) for base in manifest["functions"]]
    (plugin_dir / "official_style.json").unlink()
    (plugin_dir / f"{name}.json").write_text(json.dumps(manifest))
    out = tmp_path / "sink.out"
    buf = io.StringIO()
    env = {"PLUGIN_NAME": name, "FUNCTION_SUFFIX": suffix}
    records = run_pipeline(plugin_dir, count=3, env=env, python=python,
                           source_config={"interval": 0.01},
                           sink_config={"path": str(out)}, out=buf)
    assert [r["seq"] for r in records] == [0, 1, 2]
    assert all(r[fn("revert")] == "nosjyp" for r in records)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 9
    assert lines[0].startswith('source pyjson -> {"name": "pyjson", "seq": 0')
    assert lines[1] == f'{fn("revert")}(name) -> "nosjyp"'
    assert lines[2].startswith('sink file <- {"datasource":"","name":"pyjson","revert')
    assert [json.loads(line)[fn("revert")] for line in file_lines(out)] == ["nosjyp"] * 3
    assert not any(name in p for p in os.listdir("/tmp")), "no socket file left behind"

    # The same from a shell; a failing function makes one error line a record and exit 1.
    command = [sys.executable, "-m", "ekuiper_sdk.testing", "run", str(plugin_dir),
               "--python", python, "--source-config", '{"interval": 0.01}', "--count", "2"]
    if sdk == "ekuiper":
        command.append("--no-code")  # the official SDK cannot list its symbols
    env = {**os.environ, **env}
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines().count(f"{fn('revert')}(name) -> \"nosjyp\"") == 2
    proc = subprocess.run(command + ["--function", fn("boom")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and errors[0].startswith(f"error: record 1: {fn('boom')}(name): ")
    assert all("boom: ['pyjson'] in rule" in line for line in errors)
    assert "summary: 2 records in, 0 out, 2 error(s)" in proc.stderr


# ---------------------------------------------------------------------------
# the host's own rules, against a fake plugin written with bare pynng

FAKE_PLUGIN = textwrap.dedent('''
    import json, os, sys, threading, time
    import pynng

    name, mode = os.environ["PLUGIN_NAME"], os.environ["FAKE_MODE"]
    print("argv", sys.argv[1:], "cwd", os.getcwd(), flush=True)
    if mode == "exit":
        print("bad config: no broker", flush=True)
        sys.exit(3)
    if mode == "silent":
        time.sleep(60)

    def serve_function(symbol):
        sock = pynng.Req0(resend_time=0, recv_max_size=0)
        sock.dial("ipc:///tmp/func_%s.ipc" % symbol, block=True)
        sock.send(b"handshake")
        while True:
            request = json.loads(sock.recv())
            print("func request", request["func"], flush=True)
            sock.send(b"hold on")          # a keepalive: the host must ask again
            again = json.loads(sock.recv())
            assert again == request, (again, request)
            sock.send(json.dumps({"state": True, "result": again["arg"][0] * 2}).encode())

    ctrl = pynng.Req0(resend_time=0, recv_max_size=0)
    ctrl.dial("ipc:///tmp/plugin_%s.ipc" % name, block=True)
    ctrl.send(b"handshake")
    seen = 0
    while True:
        command = ctrl.recv()
        seen += 1
        print("got", seen, command.decode(), flush=True)
        if mode == "keepalive" and seen <= 2:
            answer = b"hello, still here"
        elif mode == "always_h":
            answer = b"handler not found"
        elif mode == "late" and seen == 1:
            time.sleep(1.0)
            answer = b"late answer"
        else:
            answer = b"ok"
            arg = json.loads(json.loads(command)["arg"])
            if arg.get("pluginType") == "func":
                threading.Thread(target=serve_function, args=(arg["symbolName"],),
                                 daemon=True).start()
        ctrl.send(answer)
''')


@pytest.fixture
def fake(tmp_path: Path, unique_name: Callable[..., str]) -> Iterator[Callable[..., PluginHost]]:
    """Make (not start) a PluginHost running the fake plugin in a given mode."""
    script = tmp_path / "fake.py"
    script.write_text(FAKE_PLUGIN)
    hosts: list[PluginHost] = []

    def make(mode: str, **options: object) -> PluginHost:
        name = unique_name("f")
        host = PluginHost(name, script, env={"PLUGIN_NAME": name, "FAKE_MODE": mode},
                          **options)  # type: ignore[arg-type]
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.close()


def output_has(host: PluginHost, text: str) -> Callable[[], bool]:
    return lambda: any(text in line for line in host.output)


def test_launch_arguments_and_folder(fake: Callable[..., PluginHost], tmp_path: Path) -> None:
    host = fake("ok", send_timeout_ms=1234)
    host.start()
    wait_for(output_has(host, "argv"), what="the plugin's first line")
    line = next(line for line in host.output if line.startswith("argv"))
    assert line == f"argv ['{{\"sendTimeout\":1234}}'] cwd {tmp_path}"


def test_keepalive_answers_make_the_host_resend(fake: Callable[..., PluginHost],
                                                host_generation: HostGeneration) -> None:
    host = fake("keepalive", generation=host_generation)
    host.start()
    command = b'{"cmd":"stop","arg":"{}"}'
    if not host_generation.skips_keepalives:
        # Before 2.1.3 the host takes it for the answer: "receive error: hello, ...".
        assert host.send_command(command) == b"hello, still here"
        return
    assert host.send_command(command) == b"ok"
    wait_for(output_has(host, "got 3 " + command.decode()), what="the third copy")
    assert not any(line.startswith("got 4") for line in host.output)


def test_answers_starting_with_h_loop_until_timeout(fake: Callable[..., PluginHost]) -> None:
    host = fake("always_h")
    host.start()
    with pytest.raises(HostError, match="keepalive starting with 'h'"):
        host.send_command(b'{"cmd":"stop","arg":"{}"}', timeout=0.5)


def test_late_answer_is_discarded(fake: Callable[..., PluginHost]) -> None:
    host = fake("late")
    host.start()
    with pytest.raises(HostError, match="no answer"):
        host.send_command(b'{"cmd":"stop","arg":"{\\"n\\":1}"}', timeout=0.3)
    # The socket now holds no request: the host takes the late answer, drops it, and the
    # next command gets its own answer.
    assert host.send_command(b'{"cmd":"stop","arg":"{\\"n\\":2}"}', timeout=5) == b"ok"
    wait_for(output_has(host, 'got 2 {"cmd":"stop","arg":"{\\"n\\":2}"}'), what="command 2")


def test_function_keepalive_and_first_handshake(fake: Callable[..., PluginHost],
                                                unique_name: Callable[..., str],
                                                host_generation: HostGeneration) -> None:
    host = fake("ok", generation=host_generation)  # every generation skips it here
    host.start()
    double = host.function(unique_name("fn"))
    assert double.call(21) == 42
    assert double.call("ab") == "abab"
    wait_for(output_has(host, "func request Exec"), what="the function's log")


def test_plugin_that_exits_fails_start(fake: Callable[..., PluginHost]) -> None:
    host = fake("exit")
    with pytest.raises(HostError, match="exit code 3") as err:
        host.start()
    assert "bad config: no broker" in str(err.value), "the error shows the plugin's output"
    assert not os.path.exists(host.control_url[len("ipc://"):])


def test_plugin_without_handshake_times_out(fake: Callable[..., PluginHost]) -> None:
    host = fake("silent", init_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(HostError, match="no handshake within 0.5s"):
        host.start()
    assert time.monotonic() - started < 3
    assert host.process is not None and host.process.poll() is not None, "killed"


def test_sink_start_fails_when_plugin_is_not_listening(fake: Callable[..., PluginHost],
                                                       unique_name: Callable[..., str]) -> None:
    host = fake("ok")
    host.start()
    rule = unique_name("r")
    with pytest.raises(HostError, match="can't dial on push socket"):
        host.start_sink("file", rule)
    # Like eKuiper, the host sends stop after the failed dial.
    wait_for(output_has(host, 'got 2 {"cmd":"stop"'), what="the stop command")
    assert not os.path.exists(f"/tmp/{rule}_op1_0_ack.ipc")
    assert host.registered_commands == []


@pytest.mark.parametrize("data_source_field", [False, True])
def test_commands_are_encoded_like_go(fake: Callable[..., PluginHost],
                                      unique_name: Callable[..., str],
                                      data_source_field: bool) -> None:
    host = fake("ok")
    host.start()
    rule = unique_name("r")
    src = host.start_source("s", rule, datasource="a&b", config={"z": 1.0, "a": [True, None]},
                            data_source_field=data_source_field)
    wait_for(output_has(host, "got 1 "), what="the start command")
    line = next(line for line in host.output if line.startswith("got 1 "))
    command = line[len("got 1 "):]
    control = json.loads(json.loads(command)["arg"])
    # A v2 host leaves dataSource empty (omitted) and sends DATASOURCE inside config; older
    # hosts filled the field too.
    assert control.get("dataSource") == ("a&b" if data_source_field else None)
    assert control["config"]["datasource"] == "a&b"
    field = '\\"dataSource\\":\\"a\\\\u0026b\\",' if data_source_field else ""
    # Go escapes & inside the Control text, then escapes that text's backslash once more;
    # it sorts map keys, and the stream's properties are written over the config.
    assert command == ('{"cmd":"start","arg":"{\\"symbolName\\":\\"s\\",\\"meta\\":{\\"ruleId\\":'
                       f'\\"{rule}\\",\\"opId\\":\\"op1\\",\\"instanceId\\":0}},'
                       f'\\"pluginType\\":\\"source\\",{field}'
                       '\\"config\\":{\\"a\\":[true,null],\\"datasource\\":\\"a\\\\u0026b\\",'
                       '\\"delimiter\\":\\"\\",\\"format\\":\\"json\\",\\"key\\":\\"\\",'
                       '\\"retainSize\\":0,\\"schemaId\\":\\"\\",\\"strictValidation\\":false,'
                       '\\"timestamp\\":\\"\\",\\"timestampFormat\\":\\"\\",\\"z\\":1}}"}')
    src.stop()


def test_source_config_is_built_like_ekuiper_v2(fake: Callable[..., PluginHost],
                                               unique_name: Callable[..., str],
                                               tmp_path: Path) -> None:
    """yaml default, CONF_KEY section over it, then the stream's properties over both."""
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "s.yaml").write_text(
        "default:\n  interval: 1\n  url: a\n  format: binary\nfast:\n  interval: 0.1\n")
    host = fake("ok")
    host.start()
    src = host.start_source("s", unique_name("r"), datasource="topicX", conf_key="FAST",
                            stream={"format": "JSON", "key": "id"})
    wait_for(output_has(host, "got 1 "), what="the start command")
    line = next(line for line in host.output if line.startswith("got 1 "))
    control = json.loads(json.loads(line[len("got 1 "):])["arg"])
    assert "dataSource" not in control
    assert control["config"] == {
        "interval": 0.1, "url": "a", "format": "json", "key": "id", "datasource": "topicX",
        "schemaId": "", "delimiter": "", "retainSize": 0, "strictValidation": False,
        "timestamp": "", "timestampFormat": ""}
    src.stop()
    with pytest.raises(HostError, match="not a stream property: colour"):
        host.start_source("s", unique_name("r"), stream={"colour": "red"})


def test_a_conf_key_with_no_section_warns_and_starts_with_the_default(
        fake: Callable[..., PluginHost], unique_name: Callable[..., str],
        tmp_path: Path) -> None:
    """Seen on eKuiper v2.4: a CONF_KEY the yaml lacks is logged as a warning ("fail to
    find config key missing for source ...") and the rule runs with the default section."""
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "s.yaml").write_text("default:\n  interval: 1\nfast:\n  x: 2\n")
    host = fake("ok")
    host.start()
    with pytest.warns(SourceConfigWarning, match=r"s\.yaml has no section 'slow' \(CONF_KEY\)"
                      r".*fail to find config key slow for source s\)$"):
        src = host.start_source("s", unique_name("r"), conf_key="slow")
    wait_for(output_has(host, "got 1 "), what="the start command")
    line = next(line for line in host.output if line.startswith("got 1 "))
    config = json.loads(json.loads(line[len("got 1 "):])["arg"])["config"]
    assert config["interval"] == 1 and "x" not in config
    src.stop()


# ---------------------------------------------------------------------------
# decoding and encoding as Go does


@pytest.mark.parametrize("frame, message, meta", [
    (b'{"message":{"a":1},"meta":{"m":2}}', {"a": 1}, {"m": 2}),
    (b'{"MESSAGE":{"a":1},"Meta":null}', {"a": 1}, None),      # Go matches keys any case
    (b'{"message":{"a":1},"Message":{"a":2}}', {"a": 2}, None),  # the last key wins
    (b'{"error":"x"}', None, None),                              # a tuple with no message
    (b"null", None, None),
    (b'{"message":{"s":"\xff"}}', {"s": "\ufffd"}, None),       # Go replaces bad UTF-8
])
def test_source_frames_go_accepts(frame: bytes, message: object, meta: object) -> None:
    assert decode_source_frame(frame) == SourceTuple(message, meta, frame)  # type: ignore[arg-type]


@pytest.mark.parametrize("frame", [
    b'{"message":[1,2]}', b'{"message":"text"}', b'{"message":{},"meta":[]}', b"[]", b"",
    b'{"message":{"x":NaN}}', b'{"message":{"x":Infinity}}', b'{"message":{"x":1e400}}',
    b'{"message":{}} extra', b'{"message":{"x":1' + b"0" * 400 + b"}}",
])
def test_source_frames_go_refuses(frame: bytes) -> None:
    with pytest.raises(InvalidFrameError, match="^Invalid data format, cannot decode"):
        decode_source_frame(frame)


def test_go_json_dumps() -> None:
    assert go_json_dumps({"b": [1.0, 2.5, b"\x00"], "a": {"y": None, "x": "<&>"}}) == (
        b'{"a":{"x":"\\u003c\\u0026\\u003e","y":null},"b":[1,2.5,"AA=="]}')
    assert go_json_dumps("\u2028é") == b'"\\u2028\xc3\xa9"'
    with pytest.raises(ValueError, match="unsupported value"):
        go_json_dumps({"x": float("nan")})
