"""``ekuiper-plugin record``: finding and wrapping a rule's function calls, and recording on
a real eKuiper (those tests run only when a server is given: ``--ekuiper-url URL``; see
docs/testing.md). On the server each checks that the plugin's sink got the very frames the
fixture holds, that the replay gives it the same frames again, and that the server's
rules, streams and plugins are as they were, also after Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.pack_helpers import unique_name
from helpers.replay_plugin import make_plugin

from ekuiper_sdk.errors import SocketNameWarning
from ekuiper_sdk.testing import frame_bytes, read_fixture, replay
from ekuiper_sdk.testing.real import RealEkuiper
from ekuiper_sdk.tools.cli import main
from ekuiper_sdk.tools.record import RecordError, record, server_state
from ekuiper_sdk.tools.sql_calls import find_calls, wrap_calls

#: Names on a shared server start with this (plugin sockets are global on its machine).
PREFIX = os.environ.get("EKUIPER_TEST_PREFIX", "rec")


def wrapped(sql: str, names: set[str]) -> str:
    return wrap_calls(sql, names, lambda call, text: f"W({', '.join(call.args)} | {text})")[0]


@pytest.mark.parametrize("sql, expected", [
    ("SELECT f(a) FROM s", "SELECT W(a | f(a)) AS f FROM s"),
    ("SELECT f(a) AS x, F (b, 'f(c)') FROM s WHERE f(`odd name`) > 1",
     "SELECT W(a | f(a)) AS x, W(b, 'f(c)' | F (b, 'f(c)')) AS F FROM s "
     "WHERE W(`odd name` | f(`odd name`)) > 1"),
    ("SELECT f(f(a)) AS y FROM s", "SELECT W(f(a) | f(W(a | f(a)))) AS y FROM s"),
    ("SELECT g(a), s.f, 'f(x)' FROM s", "SELECT g(a), s.f, 'f(x)' FROM s"),
    ("SELECT f() FROM s", "SELECT W( | f()) AS f FROM s"),
])
def test_calls_are_wrapped_where_they_are_and_keep_their_column(sql: str,
                                                                 expected: str) -> None:
    assert wrapped(sql, {"f"}) == expected


def test_a_sql_the_scanner_cannot_read_is_one_line() -> None:
    with pytest.raises(ValueError, match="unclosed ' in the rule's SQL"):
        find_calls("SELECT f('a) FROM s", {"f"})
    with pytest.raises(ValueError, match="unbalanced parentheses"):
        find_calls("SELECT f(a FROM s", {"f"})


def test_record_needs_a_length_and_a_reachable_server(tmp_path: Path) -> None:
    err = __import__("io").StringIO()
    code = main(["record", "--server", "http://127.0.0.1:9", "--plugin", "p", "--out",
                 str(tmp_path / "f.jsonl"), "--timeout", "2", "--seconds", "1"], err=err)
    assert code == 1 and err.getvalue().startswith("error: ")
    assert err.getvalue().count("\n") == 1
    from ekuiper_sdk.tools.rest import RestClient
    with pytest.raises(RecordError, match="--seconds N or --records N"):
        record(RestClient("http://127.0.0.1:9"), "p", tmp_path / "f.jsonl")


# -- on a real eKuiper ------------------------------------------------------------


class Setup:
    def __init__(self, server: RealEkuiper, tmp_path: Path) -> None:
        self.server = server
        self.folder, self.name = make_plugin(tmp_path, PREFIX)
        self.kept = tmp_path / "kept-on-server.txt"
        self.stream, self.rule = unique_name(PREFIX + "s"), unique_name(PREFIX + "r")
        server.install(self.folder)
        server.create_stream(self.stream, f"{self.name}_tick", datasource="d1")
        server.create_rule(self.rule, f"SELECT n, {self.name}_up(ds) AS up FROM {self.stream}",
                           [{f"{self.name}_keep": {"path": str(self.kept), "batchSize": 3}}])
        deadline = time.monotonic() + 30
        while not (self.kept.exists() and self.kept.read_bytes().count(b"\n") >= 2):
            assert time.monotonic() < deadline, "the rule sent the plugin's sink nothing"
            time.sleep(0.2)

    def state(self):  # type: ignore[no-untyped-def]
        return server_state(self.server.client, [self.rule])


@pytest.fixture
def setup(ekuiper_server: RealEkuiper, tmp_path: Path) -> Setup:
    return Setup(ekuiper_server, tmp_path)


def test_a_recording_holds_the_frames_the_plugin_got_and_leaves_the_server_as_it_was(
        setup: Setup, tmp_path: Path) -> None:
    before = setup.state()
    out = tmp_path / "rec.jsonl"
    count = record(setup.server.client, setup.name, out, rules=[setup.rule], records=6,
                   python_version=setup.server.python_version)
    assert setup.state().differences(before) == []
    fixture = read_fixture(out)
    assert count == len(fixture.events)
    sinks, calls = fixture.of_kind("sink"), fixture.of_kind("call")
    sources = fixture.of_kind("source")
    assert len(sinks) >= 2 and len(calls) >= 6 and len(sources) >= 6
    assert all(e["framing"] == {"batchSize": 3} for e in sinks)
    assert all(len(e["frame"]) == 3 and isinstance(e["frame"][0], list) for e in sinks)
    assert all(c["args"] == ["d1"] and c["result"] == "D1" for c in calls)
    assert sources[0]["datasource"] == "d1" and "n" in sources[0]["message"]

    # The plugin's sink on the server got these frames, one after another, byte for byte.
    frames = [frame_bytes(e) for e in sinks]
    got = setup.kept.read_bytes().split(b"\n")
    starts = [i for i, line in enumerate(got) if line == frames[0]]
    assert any(got[i:i + len(frames)] == frames for i in starts), (frames, got)

    # Replayed here, beside the server that runs the same plugin (the host runs its copy
    # under a suffix), the sink gets them again.
    replayed = tmp_path / "kept-on-replay.txt"
    with pytest.warns(SocketNameWarning):
        result = replay(out, setup.folder, kinds=("sink", "call"),
                        config={f"{setup.name}_keep": {"path": str(replayed)}})
    assert result.errors == [] and result.changed_calls() == []
    assert replayed.read_bytes().split(b"\n")[:-1] == frames


def test_ctrl_c_ends_the_recording_and_restores_the_server(setup: Setup,
                                                          tmp_path: Path) -> None:
    before = setup.state()
    out = tmp_path / "rec.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ekuiper_sdk.tools.cli", "record", "--server",
         setup.server.client.server, "--plugin", setup.name, "--rule", setup.rule,
         "--seconds", "300", "--out", str(out), "--python-version",
         setup.server.python_version], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240   # the recorder plugin is packed with wheels
        while not (out.exists() and out.read_text().count("\n") >= 4):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the recording recorded nothing"
            time.sleep(0.2)
        assert setup.state().differences(before) != []     # the recording is on
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted: wrote" in err and "warning" not in err, err
    assert setup.state().differences(before) == []
    assert read_fixture(out).of_kind("sink")


@pytest.mark.parametrize("where, window", [("", "CountWindow(3)"),
                                           ("WHERE n < 0", "TUMBLINGWINDOW(ss, 1)")])
def test_an_aggregate_is_recorded_with_the_groups_values(setup: Setup, tmp_path: Path,
                                                          where: str, window: str) -> None:
    rule = unique_name(PREFIX + "a")
    setup.server.create_rule(
        rule, f"SELECT {setup.name}_total(n) AS t FROM {setup.stream} {where} "
              f"GROUP BY {window}",
        [{f"{setup.name}_keep": {"path": str(tmp_path / "agg.txt"), "sendSingle": True}}])
    before = server_state(setup.server.client, [rule])
    out = tmp_path / "rec.jsonl"
    log = __import__("io").StringIO()
    record(setup.server.client, setup.name, out, rules=[rule], records=2, log=log,
           aggregates=[f"{setup.name}_total"], python_version=setup.server.python_version)
    assert server_state(setup.server.client, [rule]).differences(before) == []
    assert "warning" not in log.getvalue()
    calls = read_fixture(out).of_kind("call")
    assert len(calls) >= 2
    for call in calls:
        (values,) = call["args"]
        if where:     # every row dropped: eKuiper calls the aggregate with null
            assert values is None and call["result"] == 0
        else:
            assert len(values) == 3 and call["result"] == sum(values)
    with pytest.warns(SocketNameWarning):
        result = replay(out, setup.folder, kinds=("call",))
    assert result.errors == [] and result.changed_calls() == []
    assert len(result.outcomes) == len(calls)


def test_record_runs_from_a_thread_other_than_the_main_one(tmp_path: Path) -> None:
    # Signal handlers can only be set in the main thread: elsewhere the recording goes
    # without them, and still reports its errors.
    import threading

    from ekuiper_sdk.tools.rest import RestClient

    caught: list[BaseException] = []

    def go() -> None:
        try:
            record(RestClient("http://127.0.0.1:9", timeout=2), "p", tmp_path / "f.jsonl",
                   seconds=1)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            caught.append(exc)

    thread = threading.Thread(target=go)
    thread.start()
    thread.join(30)
    assert len(caught) == 1 and isinstance(caught[0], RecordError), caught
