"""The decorator-and-async example (example/pysam_async), run by ``ekuiper_sdk.testing``.

Socket paths are global on a machine (the control channel is named after the plugin, a
function's channel after the function alone), so each test runs a copy of the example
whose plugin and symbol names carry a unique suffix; the code is otherwise the example's.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Callable

import pytest
from helpers import EXAMPLES

from ekuiper_sdk.testing import PluginHost, run_pipeline

EXAMPLE = EXAMPLES / "pysam_async"
NAMES = ("pysam_async", "pyjson_async", "print_async", "revert2", "avg2")


class Copy:
    def __init__(self, folder: Path, suffix: str) -> None:
        self.folder = folder
        self.suffix = suffix

    def name(self, original: str) -> str:
        return original + self.suffix

    @property
    def script(self) -> Path:
        return self.folder / "pysam_async.py"


@pytest.fixture
def example(tmp_path: Path) -> Copy:
    suffix = f"_{os.getpid()}_{random.getrandbits(32):08x}"
    folder = tmp_path / "pysam_async"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("state", "__pycache__"))
    for path in (folder / "pysam_async.py", folder / "pysam_async.json"):
        text = path.read_text()
        for original in NAMES:
            text = text.replace(f'"{original}"', f'"{original}{suffix}"')
        path.write_text(text)
    manifest = json.loads((folder / "pysam_async.json").read_text())
    assert manifest["functions"] == [f"revert2{suffix}", f"avg2{suffix}"]
    (folder / "pysam_async.json").rename(folder / f"pysam_async{suffix}.json")
    return Copy(folder, suffix)


def test_the_example_runs_as_a_pipeline(example: Copy, tmp_path: Path) -> None:
    out = io.StringIO()
    records = run_pipeline(example.folder, count=3, out=out,
                           env={"EKUIPER_SDK_STATE_DIR": str(tmp_path / "state")})
    assert [r["count"] for r in records] == [1, 2, 3]
    assert all(r[example.name("revert2")] == "nosjyp" for r in records)
    assert f"sink {example.name('print_async')} <- " in out.getvalue()


def test_the_example_symbols_one_by_one(example: Copy, tmp_path: Path,
                                        plugin_host_factory: Callable[..., PluginHost]) -> None:
    env: dict[str, str] = {"EKUIPER_SDK_STATE_DIR": str(tmp_path / "state")}
    host = plugin_host_factory(example.name("pysam_async"), example.script, env=env)
    rule = f"rule{example.suffix}"

    src = host.start_source(example.name("pyjson_async"), rule, datasource="demo",
                            config={"interval": 0.01})
    assert [t.message for t in src.take(2)] == [
        {"name": "pyjson", "value": 2021, "count": n, "datasource": "demo"} for n in (1, 2)]

    revert2 = host.function(example.name("revert2"))
    assert revert2.call("abc") == "cba"
    assert revert2.validate(["a", "b"]).result == f"{example.name('revert2')} takes 1 " \
                                                  "argument, got 2"
    avg2 = host.function(example.name("avg2"))
    assert avg2.is_aggregate() and not revert2.is_aggregate()
    assert avg2.call([1, 2, None, 6]) == 3
    assert avg2.call([]) is None

    sink = host.start_sink(example.name("print_async"), rule, op_id="sink",
                           config={"requireAck": True, "prefix": "seen"})
    sink.send([{"a": 1}, {"a": 2}])  # acked once both records were printed
    deadline = time.monotonic() + 5
    while sum("seen: {'a':" in line for line in host.output) < 2:
        assert time.monotonic() < deadline, host.output_tail()
        time.sleep(0.02)
    sink.stop()

    # The source saves its count: after a crash, the replayed start carries on from it.
    host.restart()
    deadline = time.monotonic() + 5
    while True:
        starts = [line.rsplit(" ", 1)[1] for line in host.output
                  if "emitting every 0.01 s from count" in line]
        if len(starts) == 2:
            break
        assert time.monotonic() < deadline, host.output_tail()
        time.sleep(0.02)
    assert starts[0] == "0" and int(starts[1]) >= 2
    src.stop()
    assert (tmp_path / "state" / example.name("pysam_async")).is_dir()


def test_state_lives_in_ekuiper_data_and_survives_an_update(
        example: Copy, tmp_path: Path, plugin_host_factory: Callable[..., PluginHost]) -> None:
    """Installed in eKuiper's layout, state goes to <root>/data and outlives the folder.

    eKuiper's update deletes plugins/portable/<name>/ and unpacks the zip again; the
    source's count carries on from what the previous install saved.
    """
    root = tmp_path / "kuiper"
    (root / "data").mkdir(parents=True)
    installed = root / "plugins" / "portable" / example.name("pysam_async")
    env = {key: value for key, value in os.environ.items() if key != "EKUIPER_SDK_STATE_DIR"}
    counts = []
    for _install in range(2):
        shutil.copytree(example.folder, installed)
        host = plugin_host_factory(example.name("pysam_async"), installed / "pysam_async.py",
                                   env=env)
        src = host.start_source(example.name("pyjson_async"), f"rule{example.suffix}",
                                config={"interval": 0.01})
        counts.append([t.message["count"] for t in src.take(3) if t.message])
        src.stop()
        host.close()
        shutil.rmtree(installed)  # what an update does first
    state_root = root / "data" / "ekuiper-sdk-state"
    assert counts[0] == [1, 2, 3]
    assert counts[1][0] > 3, "the second install resumed from the saved count"
    assert (state_root / example.name("pysam_async")).is_dir()
    assert any(f"ctx.state is kept in {state_root}" in line for line in host.output)


@pytest.mark.parametrize("framing", [
    {}, {"sendSingle": True}, {"batchSize": 3}, {"batchSize": 3, "sendSingle": True},
    {"lingerInterval": 100}, {"batchSize": 2, "lingerInterval": 100},
])
def test_a_per_record_sink_gets_records_however_ekuiper_frames_them(
        example: Copy, tmp_path: Path, plugin_host_factory: Callable[..., PluginHost],
        framing: dict[str, object]) -> None:
    env = {"EKUIPER_SDK_STATE_DIR": str(tmp_path / "state")}
    host = plugin_host_factory(example.name("pysam_async"), example.script, env=env)
    sink = host.start_sink(example.name("print_async"), f"rule{example.suffix}",
                           config={"requireAck": True, "prefix": "row", **framing})
    frames = sink.send_rows([{"n": 1}, {"n": 2}, {"n": 3}])
    assert frames == (3 if framing == {"sendSingle": True} else 1)
    deadline = time.monotonic() + 5
    while sum("row: " in line for line in host.output) < 3:
        assert time.monotonic() < deadline, host.output_tail()
        time.sleep(0.02)
    sink.stop()
    printed = [line.split("row: ", 1)[1] for line in host.output if "row: " in line]
    assert printed == ["{'n': 1}", "{'n': 2}", "{'n': 3}"]


def test_calls_with_no_arguments_and_empty_groups(
        example: Copy, tmp_path: Path, plugin_host_factory: Callable[..., PluginHost]) -> None:
    """``SELECT revert2()`` sends Validate with null; an empty window sends null values."""
    env = {"EKUIPER_SDK_STATE_DIR": str(tmp_path / "state")}
    host = plugin_host_factory(example.name("pysam_async"), example.script, env=env)
    reply = host.function(example.name("revert2")).validate([])
    assert not reply.state
    assert reply.result == f"{example.name('revert2')} takes 1 argument, got 0"
    avg2 = host.function(example.name("avg2"))
    assert avg2.validate([]).result == f"{example.name('avg2')} takes 1 argument, got 0"
    # avg2 declares a list; eKuiper sends null for a group with no values.
    assert avg2.call(None) is None
    assert avg2.call([2, 4]) == 3
