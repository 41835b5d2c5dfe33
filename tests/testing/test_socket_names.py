"""A test host beside a live copy of the same plugin: it never binds over or removes the
live copy's sockets, and runs its own copy under other names (testing/socket_names.py)."""

from __future__ import annotations

import io
import json
import os
import socket
import warnings
from pathlib import Path

import pynng
import pytest

from ekuiper_sdk.errors import HostError, SocketNameWarning
from ekuiper_sdk.testing import PluginHost, run_pipeline
from ekuiper_sdk.testing.socket_names import live_socket, remove_stale_socket

SCRIPT = '''
from ekuiper_sdk import Plugin

app = Plugin("@P@")


@app.function("@F@")
def reverse(text: str) -> str:
    return text[::-1]


@app.sink("@S@")
def keep(ctx, record):
    print("got", record, flush=True)


if __name__ == "__main__":
    app.run()
'''

OFFICIAL_STYLE = '''
from ekuiper import Function, PluginConfig, plugin


class Reverse(Function):
    def validate(self, args):
        return ""

    def exec(self, args, ctx):
        return args[0][::-1]

    def is_aggregate(self):
        return False


if __name__ == "__main__":
    plugin.start(PluginConfig("@P@", {}, {}, {"@F@": lambda: Reverse()}))
'''


def make_plugin(folder: Path, name: str, function: str, sink: str,
                script: str = SCRIPT) -> Path:
    folder.mkdir()
    (folder / f"{name}.py").write_text(
        script.replace("@P@", name).replace("@F@", function).replace("@S@", sink))
    (folder / f"{name}.json").write_text(json.dumps({
        "version": "v1.0.0", "language": "python", "executable": f"{name}.py",
        "sinks": [sink], "functions": [function]}))
    return folder / f"{name}.py"


@pytest.fixture
def plugin(tmp_path: Path, unique_name) -> tuple[str, str, str, Path]:
    name, function, sink = unique_name("sn"), unique_name("snf"), unique_name("sns")
    return name, function, sink, make_plugin(tmp_path / name, name, function, sink)


def test_live_socket_tells_a_listener_from_a_stale_file(tmp_path: Path, unique_name) -> None:
    path = f"/tmp/{unique_name('live')}.ipc"
    rep = pynng.Rep0()
    rep.listen(f"ipc://{path}")
    try:
        assert live_socket(path)
        remove_stale_socket(path)
        assert os.path.exists(path), "a live listener's file was removed"
    finally:
        rep.close()
    stale = f"/tmp/{unique_name('stale')}.ipc"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(stale)
    sock.close()                                  # the file stays, nobody listens
    assert not live_socket(stale)
    remove_stale_socket(stale)
    assert not os.path.exists(stale)
    assert not live_socket(str(tmp_path / "missing.ipc"))


def test_a_second_host_runs_beside_the_installed_copy(plugin, unique_name) -> None:
    name, function, sink, script = plugin
    # The first host plays eKuiper with the plugin installed: it holds the plugin's names.
    with PluginHost(name, script, rename=False) as installed:
        assert installed.function(function).call("abc") == "cba"
        control = f"/tmp/plugin_{name}.ipc"
        func_path = f"/tmp/func_{function}.ipc"
        with pytest.warns(SocketNameWarning, match=f"running this copy as plugin {name}_run"):
            beside = PluginHost(name, script)
            beside.start()
        try:
            assert beside.suffix and beside.control_url != f"ipc://{control}"
            assert beside.function(function).call("xyz") == "zyx"
            out = beside.start_sink(sink, unique_name("r"), config={"requireAck": True})
            out.send({"a": 1})
            out.stop()
        finally:
            beside.close()
        # The installed copy kept its sockets and still answers, and restarts (an update).
        assert live_socket(control) and live_socket(func_path)
        assert installed.function(function).call("def") == "fed"
        installed.restart()
        assert installed.function(function).call("ghi") == "ihg"


def test_run_beside_the_installed_copy_says_so_in_one_line(plugin) -> None:
    name, function, _sink, script = plugin
    with PluginHost(name, script, rename=False) as installed:
        installed.function(function)
        out, log = io.StringIO(), io.StringIO()
        results = run_pipeline(script.parent, calls=[["abc"]], out=out, log=log)
        assert results == [{"args": ["abc"], "result": "cba"}]
        notes = [line for line in log.getvalue().splitlines() if line.startswith("note:")]
        assert len(notes) == 1 and f"/tmp/plugin_{name}.ipc" in notes[0], log.getvalue()
        assert installed.function(function).call("run") == "nur"
        # Without a log (run_pipeline from a test), the line is a warning pytest shows.
        with pytest.warns(SocketNameWarning, match="so both keep working"):
            run_pipeline(script.parent, calls=[["x"]], out=io.StringIO())


def test_refusing_to_rename_is_one_line_and_touches_nothing(plugin) -> None:
    name, function, _sink, script = plugin
    with PluginHost(name, script, rename=False) as installed:
        installed.function(function)
        with pytest.raises(HostError) as refused:
            PluginHost(name, script, rename=False).start()
        message = str(refused.value)
        assert "\n" not in message and "held by a live listener" in message
        assert f"/tmp/plugin_{name}.ipc" in message and "rename=None" in message
        assert installed.function(function).call("abc") == "cba"


def test_a_plugin_on_the_official_package_is_not_renamed(tmp_path: Path, unique_name,
                                                       plugin) -> None:
    name, function, _sink, script = plugin
    official = make_plugin(tmp_path / "official", name, function, "unused", OFFICIAL_STYLE)
    with PluginHost(name, script, rename=False) as installed:
        installed.function(function)
        with pytest.raises(HostError, match="does not use ekuiper_sdk") as refused:
            PluginHost(name, official).start()
        assert "\n" not in str(refused.value)
        assert installed.function(function).call("abc") == "cba"


def test_a_name_taken_later_is_a_host_error_not_an_nng_one(plugin, unique_name) -> None:
    name, function, _sink, script = plugin
    other = unique_name("held")
    holder = pynng.Rep0()
    holder.listen(f"ipc:///tmp/func_{other}.ipc")
    try:
        with PluginHost(name, script) as host:
            with pytest.raises(HostError, match=f"/tmp/func_{other}.ipc is held by a live"):
                host.function(other)
        assert live_socket(f"/tmp/func_{other}.ipc")
    finally:
        holder.close()


def test_rename_true_gives_fresh_names_even_when_free(plugin) -> None:
    name, function, _sink, script = plugin
    with warnings.catch_warnings():
        warnings.simplefilter("error", SocketNameWarning)    # nothing was taken: no warning
        with PluginHost(name, script, rename=True) as host:
            assert host.suffix and host.function(function).call("ab") == "ba"
            assert not os.path.exists(f"/tmp/plugin_{name}.ipc")


def test_the_testing_package_exports_what_its_docs_name() -> None:
    import ekuiper_sdk.errors as errors
    import ekuiper_sdk.testing as testing

    assert testing.RealEkuiperError is errors.RealEkuiperError
    assert testing.SocketNameWarning is errors.SocketNameWarning
    assert {"RealEkuiperError", "SocketNameWarning"} <= set(testing.__all__)
