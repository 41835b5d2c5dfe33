"""Replaying recorded fixtures under the built-in host (``ekuiper_sdk.testing.replay``,
``ekuiper-plugin run --replay``) and the snapshot helper. Real plugin processes over real
IPC sockets; the fixtures are written as ``ekuiper-plugin record`` writes them."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.pack_helpers import unique_name
from helpers.replay_plugin import make_plugin

from ekuiper_sdk.testing import (
    FixtureError,
    SnapshotMismatch,
    assert_snapshot,
    frame_bytes,
    read_fixture,
    replay,
)
from ekuiper_sdk.tools.cli import main
from ekuiper_sdk.tools.fixture import FixtureWriter, frame_fields

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example" / "h26demo"

def write_fixture(path: Path, name: str, events: list[dict[str, Any]]) -> Path:
    with FixtureWriter(path, {"plugin": name, "server": "http://127.0.0.1:9081"}) as out:
        for event in events:
            out.write(event)
    return path


def sink_event(name: str, raw: bytes, config: dict[str, Any], rule: str = "r1") -> dict[str, Any]:
    return {"kind": "sink", "rule": rule, "symbol": f"{name}_keep", "action": 0,
            "config": config, **frame_fields(raw)}


def test_the_sink_gets_each_recorded_frame_byte_for_byte_with_its_config(tmp_path: Path) -> None:
    folder, name = make_plugin(tmp_path)
    kept = tmp_path / "kept.txt"
    frames = [b'[[{"n":1,"s":"a"}],[{"n":2,"s":"\\u003c"}]]', b'{"n":3}', b"n=4 not json"]
    config = {"batchSize": 2, "path": str(tmp_path / "recorded-path.txt")}
    fixture = write_fixture(tmp_path / "f.jsonl", name,
                            [sink_event(name, raw, config) for raw in frames])
    # The Go-escaped frame and the text frame are kept as text, so the bytes stay the same.
    assert [("frame" in e, "text" in e) for e in read_fixture(fixture).events] == [
        (False, True), (True, False), (False, True)]
    result = replay(fixture, folder, config={f"{name}_keep": {"path": str(kept)}})
    assert kept.read_bytes().split(b"\n")[:-1] == frames
    # The third frame is not JSON: the sink's collect raised, and that is its outcome.
    assert [o.error is None for o in result.outcomes] == [True, True, False]
    assert "JSONDecodeError" in str(result.outcomes[2].error)
    assert result.outputs()[0] == {"kind": "sink", "symbol": f"{name}_keep", "frame": 1,
                                   "records": 2, "ack": "ok"}


def test_a_failing_record_is_named_with_its_frame_and_the_plugins_error(tmp_path: Path) -> None:
    folder, name = make_plugin(tmp_path)
    kept = tmp_path / "kept.txt"
    raw = b'[{"n":1},{"n":"x"},{"n":3}]'
    fixture = write_fixture(tmp_path / "f.jsonl", name, [
        sink_event(name, b'[{"n":0}]', {"path": str(kept)}),
        sink_event(name, raw, {"path": str(kept)})])
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", str(folder), "--replay", str(fixture)], out=out, err=err)
    assert code == 1
    errors = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
    assert errors == [
        f'error: line 3: rule r1, sink {name}_keep: record {{"n": "x"}} (record 2 of 3 in '
        f"frame {raw.decode()}): ValueError: n must be a number, got 'x'"], err.getvalue()
    assert re.search(r"summary: 2 events replayed \(2 frames, 0 calls, 0 tuples\), 1 error",
                     err.getvalue())
    assert out.getvalue().splitlines()[1].endswith("(rule r1, frame 2): error")


def test_calls_get_the_recorded_arguments_and_changed_results_are_shown(tmp_path: Path) -> None:
    folder, name = make_plugin(tmp_path)
    fixture = write_fixture(tmp_path / "f.jsonl", name, [
        {"kind": "call", "rule": "r1", "symbol": f"{name}_up", "call": f"{name}_up(s)",
         "args": ["abc"], "result": "ABC"},
        {"kind": "call", "rule": "r1", "symbol": f"{name}_up", "call": f"{name}_up(s)",
         "args": [None], "result": "was different"}])
    result = replay(fixture, folder)
    assert [o.output.get("result") for o in result.outcomes] == ["ABC", "NONE"]
    assert [o.event["line"] for o in result.changed_calls()] == [3]
    out, err = io.StringIO(), io.StringIO()
    assert main(["run", str(folder), "--replay", str(fixture)], out=out, err=err) == 0
    assert out.getvalue().splitlines() == [
        f'{name}_up(s) with ["abc"] -> "ABC"',
        f'{name}_up(s) with [null] -> "NONE" (recorded "was different")']


def test_a_source_starts_with_the_recorded_datasource_conf_key_and_props(tmp_path: Path) -> None:
    folder, name = make_plugin(tmp_path)
    event = {"kind": "source", "rules": ["r1"], "stream": "s1", "symbol": f"{name}_tick",
             "datasource": "topicX", "conf_key": "fast", "stream_props": {"format": "json"},
             "message": {}}
    fixture = write_fixture(tmp_path / "f.jsonl", name, [event, event])
    result = replay(fixture, folder)
    assert [o.output["message"] for o in result.outcomes] == [
        {"n": 1, "ds": "topicX", "step": 5}, {"n": 2, "ds": "topicX", "step": 5}]


def copy_example(tmp_path: Path) -> tuple[Path, str]:
    """The committed example under a name of its own (plugin sockets are global)."""
    name = unique_name("h26demo")
    target = tmp_path / name
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__"))
    for path in sorted(target.rglob("*"), key=lambda p: -len(p.parts)):
        if path.is_file():
            path.write_text(re.sub(r"\bh26demo(?=_|\b)", name, path.read_text()))
        if "h26demo" in path.name:
            path.rename(path.with_name(path.name.replace("h26demo", name)))
    return target, name


def test_the_committed_fixture_replays_with_the_framing_ekuiper_used(tmp_path: Path) -> None:
    folder, _ = copy_example(tmp_path)
    fixture = read_fixture(folder / "tests" / "fixtures" / "h26r1.jsonl")
    sinks = fixture.of_kind("sink")
    assert sinks and all(e["framing"] == {"batchSize": 2} for e in sinks)
    result = replay(fixture, folder)
    assert result.errors == [] and result.changed_calls() == []
    logged = [line.split(": > ", 1)[1] for line in result.output if ": > " in line]
    assert logged == [frame_bytes(e).decode() for e in sinks]
    assert_snapshot(result.outputs(), folder / "tests" / "snapshots" / "h26r1.json",
                    update=False)


def test_snapshots_compare_and_update(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "snap" / "s.json"
    monkeypatch.delenv("EKUIPER_SNAPSHOT_UPDATE", raising=False)
    with pytest.raises(SnapshotMismatch, match="no snapshot .*--snapshot-update"):
        assert_snapshot({"a": 1}, path)
    assert_snapshot({"a": 1}, path, update=True)
    assert_snapshot({"a": 1}, path)
    with pytest.raises(SnapshotMismatch, match=r'-  "a": 1\n\+  "a": 2'):
        assert_snapshot({"a": 2}, path)
    monkeypatch.setenv("EKUIPER_SNAPSHOT_UPDATE", "1")
    assert_snapshot({"a": 2}, path)
    assert json.loads(path.read_text()) == {"a": 2}


@pytest.mark.parametrize("text, message", [
    ("", "empty; record one"),
    ('{"kind": "sink"}\n', "the first line must be the header"),
    ('{"kind": "recording", "format": 1}\n{"kind": "call", "rule": "r"}\n',
     r":2: a call event needs symbol, args"),
    ('{"kind": "recording", "format": 1}\n[1]\n', ":2: a list, not a JSON object"),
    ('{"kind": "recording", "format": 1}\n{"kind": "frame"}\n', ":2: kind 'frame' is not one"),
    ('{"kind": "recording", "format": 1}\n{oops\n', ":2: not JSON"),
])
def test_a_bad_fixture_is_one_line_naming_the_line(tmp_path: Path, text: str,
                                                   message: str) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text(text)
    with pytest.raises(FixtureError, match=message) as caught:
        read_fixture(path)
    assert "\n" not in str(caught.value)
    code = main(["run", str(tmp_path), "--replay", str(path)], out=io.StringIO(),
                err=(err := io.StringIO()))
    assert code == 2 and err.getvalue().count("\n") == 1
