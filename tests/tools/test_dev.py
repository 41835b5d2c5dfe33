"""``ekuiper-plugin dev``: the edit-reload loop against the test REST server, driven by a
list of edits instead of a file watcher."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.fake_ekuiper_rest import FakeEkuiper
from helpers.pack_helpers import manifest_of, new_plugin, write_manifest

from ekuiper_sdk.hosts import HostGeneration
from ekuiper_sdk.tools import rest
from ekuiper_sdk.tools.dev import dev_loop, rules_using
from ekuiper_sdk.tools.manifest import Manifest


def _server(tmp_path: Path) -> FakeEkuiper:
    # install.sh runs as eKuiper runs it, so that a plugin can fail its install.
    return FakeEkuiper(tmp_path / "ek", install_env=dict(os.environ))


def test_edits_are_packed_and_sent_and_a_failed_step_keeps_the_last_good(
        tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    m = manifest_of(plugin)
    name = plugin.name
    [source], [function], [sink] = m["sources"], m["functions"], m["sinks"]
    main = plugin / "main.py"
    good = main.read_text()
    out = io.StringIO()
    with _server(tmp_path) as ek:
        ek.streams["s1"] = {"Name": "s1", "Options": {"type": source, "format": "json"}}
        ek.rules = {
            "by_stream": {"id": "by_stream", "sql": "SELECT * FROM s1", "actions": [{"log": {}}]},
            "by_function": {"id": "by_function", "sql": f"SELECT {function.upper()}(a) FROM x",
                            "actions": [{"log": {}}]},
            "by_sink": {"id": "by_sink", "sql": "SELECT * FROM x", "actions": [{sink: {}}]},
            "other": {"id": "other", "sql": f"SELECT {function}_not(a) FROM s10",
                      "actions": [{"log": {}}]},
        }

        def edits() -> Iterator[str]:
            assert ek.registry[name]["version"] == "0.1.0"
            main.write_text(good + "\ndef broken(:\n")
            yield "broken"
            assert name in ek.registry  # a failed pack sends nothing
            main.write_text(good)
            write_manifest(plugin, dict(m, version="0.2.0"))
            yield "fixed"
            assert ek.registry[name]["version"] == "0.2.0"
            (plugin / "install.sh").write_text("echo 'no room left' >&2\nexit 1\n")
            yield "refused by eKuiper"
            assert ek.registry[name]["version"] == "0.2.0"  # installed again
            raise KeyboardInterrupt

        cycles = dev_loop(plugin, rest.RestClient(ek.url, timeout=60), edits(), out=out,
                          settle=0)
        assert name in ek.registry and ek.registry[name]["version"] == "0.2.0"
    lines = out.getvalue().splitlines()
    assert [c.ok for c in cycles] == [True, False, True, False]
    assert [c.step for c in cycles] == ["done", "pack", "done", "update"]
    assert cycles[0].rules == [("by_function", "running"), ("by_sink", "running"),
                               ("by_stream", "running")]
    assert lines[0].startswith(f"ok: {name} 0.1.0 installed; status running [eKuiper ")
    assert lines[0].endswith("; used by by_function (running), by_sink (running), "
                             "by_stream (running)")
    assert lines[1].startswith("failed at pack: ") and "main.py" in lines[1]
    assert lines[2].startswith(f"ok: {name} 0.2.0 updated")
    assert lines[3].startswith("failed at update: ") and "no room left" in lines[3]
    assert lines[3].endswith("; the last good version is installed again")
    assert lines[4] == "stopped; the last good version stays installed"
    assert len(lines) == 5


#: A release of each generation, as ``GET /`` names it.
VERSIONS = {"1.x": "1.14.7", "2.0-2.1.2": "2.1.2", "2.1.3+": "2.4.0"}


def test_each_cycle_says_what_the_server_offers_and_names_the_1x_ack_socket_bug(
        tmp_path: Path, host_generation: HostGeneration) -> None:
    plugin = new_plugin(tmp_path)
    [sink] = manifest_of(plugin)["sinks"]
    out = io.StringIO()
    # What eKuiper 1.x says when a rule with a portable sink starts again (eKuiper #3156).
    in_use = ("stopped: can't listen on pull socket for ipc:///tmp/by_sink_op_0_ack.ipc: "
              "address in use")
    with FakeEkuiper(tmp_path / "ek", version=VERSIONS[host_generation.name]) as ek:
        ek.rules = {"by_sink": {"id": "by_sink", "sql": "SELECT * FROM x",
                                "actions": [{sink: {}}], "status": in_use}}
        dev_loop(plugin, rest.RestClient(ek.url, timeout=60), iter(()), out=out)
    first = out.getvalue().splitlines()[0]
    server = f"[eKuiper {VERSIONS[host_generation.name]}, generation {host_generation.name}]"
    state = (f"status installed {server} (eKuiper 1.14.7 has no plugin status; it starts the "
             "plugin when a rule first uses it" if not host_generation.status_route
             else f"status running {server};")
    assert state in first
    assert first.endswith(f"used by by_sink ({in_use}); {rest.ACK_SOCKET_HINT}")


def test_rules_using_needs_the_plugins_names_as_whole_words(tmp_path: Path) -> None:
    manifest = Manifest("p", "1", "python", "main.py", sources=("src",), functions=("f",))
    with _server(tmp_path) as ek:
        ek.streams["st"] = {"Name": "st", "Options": {"type": "src"}}
        ek.streams["other"] = {"Name": "other", "Options": {"type": "mqtt"}}
        ek.rules = {"a": {"id": "a", "sql": "SELECT ff(x), f_(y) FROM other", "actions": []},
                    "b": {"id": "b", "sql": "SELECT x FROM st", "actions": []},
                    "c": {"id": "c", "sql": "select F(x) from other", "actions": []}}
        assert rules_using(rest.RestClient(ek.url), manifest) == [("b", "running"),
                                                                  ("c", "running")]


def test_the_cli_names_the_missing_watcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    from ekuiper_sdk.tools.cli import main

    monkeypatch.setitem(sys.modules, "watchfiles", None)  # what an import without it sees
    err = io.StringIO()
    code = main(["dev", str(new_plugin(tmp_path)), "--server", "http://127.0.0.1:9"],
                out=io.StringIO(), err=err)
    assert code == 1
    [line] = err.getvalue().splitlines()
    assert "watchfiles" in line and "pip install" in line
