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
from typing import Callable, Dict

import pytest

from ekuiper_sdk.testing import PluginHost, run_pipeline

EXAMPLE = Path(__file__).resolve().parent.parent / "example" / "pysam_async"
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
    env: Dict[str, str] = {"EKUIPER_SDK_STATE_DIR": str(tmp_path / "state")}
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
