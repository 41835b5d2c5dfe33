"""The repository's examples on a real eKuiper, through its REST API.

These run only when a server is given (``--ekuiper-url URL`` or ``EKUIPER_URL``; see
docs/testing.md) and skip otherwise: CI has no eKuiper. Each test installs a copy of an
example whose plugin and symbol names carry a unique suffix (function names are global on
a server), and everything it creates is removed afterwards.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest
from helpers import EXAMPLES

from ekuiper_sdk.errors import RealEkuiperError
from ekuiper_sdk.testing.real import RealEkuiper


class Example:
    """A copy of an example with every symbol renamed ``<name><suffix>``."""

    def __init__(self, folder: Path, suffix: str) -> None:
        self.folder = folder
        self.suffix = suffix

    def name(self, original: str) -> str:
        return original + self.suffix


def copy_example(example: str, names: list[str], dest: Path) -> Example:
    suffix = f"_{os.getpid()}_{random.getrandbits(24):06x}"
    folder = dest / example
    shutil.copytree(EXAMPLES / example, folder,
                    ignore=shutil.ignore_patterns("state", "__pycache__"))
    for path in list(folder.rglob("*.py")) + list(folder.rglob("*.json")):
        text = path.read_text()
        for original in names:
            text = text.replace(f'"{original}"', f'"{original}{suffix}"')
        path.write_text(text)
    for path in sorted(folder.rglob("*"), reverse=True):
        stem = path.stem
        if path.is_file() and stem in names and path.suffix in (".json", ".yaml"):
            path.rename(path.with_name(stem + suffix + path.suffix))
    return Example(folder, suffix)


ASYNC_NAMES = ["pysam_async", "pyjson_async", "print_async", "revert2", "avg2"]


@pytest.fixture
def pysam_async(ekuiper_server: RealEkuiper, tmp_path: Path) -> Example:
    example = copy_example("pysam_async", ASYNC_NAMES, tmp_path)
    ekuiper_server.install(example.folder)
    ekuiper_server.create_stream(example.name("s"), example.name("pyjson_async"),
                                 datasource="topicX")
    return example


def test_source_function_sink_with_datasource(ekuiper_server: RealEkuiper,
                                              pysam_async: Example) -> None:
    out = ekuiper_server.capture()
    ekuiper_server.create_rule(
        pysam_async.name("r"),
        f"SELECT count, datasource, {pysam_async.name('revert2')}(name) AS r "
        f"FROM {pysam_async.name('s')}",
        [out.action(requireAck=True, sendSingle=True)])
    records = out.records(3)
    assert [r["datasource"] for r in records] == ["topicX"] * 3, "DATASOURCE reaches the source"
    assert all(r["r"] == "nosjyp" for r in records)
    counts = [r["count"] for r in records]
    assert counts == list(range(counts[0], counts[0] + 3))


def test_a_call_with_no_arguments_is_refused_with_the_count(ekuiper_server: RealEkuiper,
                                                            pysam_async: Example) -> None:
    with pytest.raises(RealEkuiperError) as err:
        ekuiper_server.create_rule(pysam_async.name("r0"),
                                   f"SELECT {pysam_async.name('revert2')}() AS r "
                                   f"FROM {pysam_async.name('s')}", [{"log": {}}])
    assert f"{pysam_async.name('revert2')} takes 1 argument, got 0" in str(err.value)


def test_an_aggregate_over_an_empty_window_gets_an_empty_list(ekuiper_server: RealEkuiper,
                                                              pysam_async: Example) -> None:
    out = ekuiper_server.capture()
    rule = pysam_async.name("ra")
    ekuiper_server.create_rule(
        rule, f"SELECT {pysam_async.name('avg2')}(value) AS a FROM {pysam_async.name('s')} "
              "WHERE count < 0 GROUP BY TUMBLINGWINDOW(ss, 1)", [out.action()])
    # avg2([]) is None, and eKuiper leaves a null field out of the record.
    assert out.records(2, timeout=10) == [{}, {}]
    assert ekuiper_server.rule_errors(rule) == []


@pytest.mark.parametrize("framing", [
    {"batchSize": 3}, {"batchSize": 3, "sendSingle": True}, {"lingerInterval": 500}])
def test_batched_frames_give_every_record_once(ekuiper_server: RealEkuiper,
                                               pysam_async: Example,
                                               framing: dict[str, object]) -> None:
    out = ekuiper_server.capture()
    ekuiper_server.create_rule(pysam_async.name("rb"),
                               f"SELECT count FROM {pysam_async.name('s')}",
                               [out.action(**framing)])
    raw = out.frames(1, timeout=15)[0]
    try:
        frame = json.loads(raw)
    except ValueError as exc:
        raise AssertionError(f"eKuiper sent a frame that is not JSON ({exc}): {raw!r}") from None
    single = framing.get("sendSingle") is True
    if ekuiper_server.client.server_info().generation.frames_batches:
        # 2.x: the batch is one frame, each row in a list of its own unless sendSingle.
        assert isinstance(frame, list)
        assert all(isinstance(item, list) != single for item in frame), frame
    else:
        # 1.x frames a batch as rows with no batching: one array, or each row alone.
        assert isinstance(frame, dict) if single else (
            isinstance(frame, list) and all(isinstance(item, dict) for item in frame)), frame
    counts = [r["count"] for r in out.records(6, timeout=15)]
    assert counts == list(range(counts[0], counts[0] + 6))


def test_state_survives_an_update(ekuiper_server: RealEkuiper, pysam_async: Example) -> None:
    out = ekuiper_server.capture()
    ekuiper_server.create_rule(pysam_async.name("ru"),
                               f"SELECT count FROM {pysam_async.name('s')}",
                               [out.action(sendSingle=True)])
    out.records(3)
    # An update deletes the plugin folder and unpacks it again; the rule keeps running on
    # the new process, and the source's count carries on from what ctx.state kept.
    ekuiper_server.install(pysam_async.folder, update=True)
    seen = len(out.received())
    counts = [r["count"] for r in out.records(seen + 4, timeout=30)]
    assert counts == sorted(counts), f"the count went back after the update: {counts}"
    assert counts.count(1) == 1


def test_the_class_style_example(ekuiper_server: RealEkuiper, tmp_path: Path) -> None:
    example = copy_example("pysam", ["pysam", "pyjson", "print", "revert"], tmp_path)
    ekuiper_server.install(example.folder)
    ekuiper_server.create_stream(example.name("s"), example.name("pyjson"),
                                 datasource="topicY")
    out = ekuiper_server.capture()
    ekuiper_server.create_rule(example.name("r"),
                               f"SELECT datasource, {example.name('revert')}(name) AS r "
                               f"FROM {example.name('s')}", [out.action(sendSingle=True)])
    # The copy renames the string "pyjson" everywhere, the record's name too.
    assert out.records(2) == [{"datasource": "topicY", "r": example.name("pyjson")[::-1]}] * 2


def test_run_tests_and_dev_beside_the_installed_plugin(ekuiper_server: RealEkuiper,
                                                       pysam_async: Example) -> None:
    """The everyday set-up: the plugin installed and serving a rule, and the developer
    running ``run``, a test host and a ``dev`` cycle on the same folder beside it."""
    import io

    from ekuiper_sdk.errors import SocketNameWarning
    from ekuiper_sdk.testing import PluginHost, run_pipeline
    from ekuiper_sdk.tools.dev import DevSession
    from ekuiper_sdk.tools.vendor import VendorOptions

    plugin, revert = pysam_async.name("pysam_async"), pysam_async.name("revert2")
    out = ekuiper_server.capture()
    ekuiper_server.create_rule(pysam_async.name("rs"),
                               f"SELECT count, {revert}(name) AS r FROM {pysam_async.name('s')}",
                               [out.action(sendSingle=True)])
    out.records(2)

    def still_serving(after: str) -> None:
        seen = len(out.received())
        records = out.records(seen + 2, timeout=15)[seen:]
        assert all(r["r"] == "nosjyp" for r in records), f"after {after}: {records}"
        assert ekuiper_server.plugin_status(plugin)["status"] == "running", after

    log = io.StringIO()
    results = run_pipeline(pysam_async.folder, calls=[["abc"]], out=io.StringIO(), log=log)
    assert results == [{"args": ["abc"], "result": "cba"}]
    assert "note: " in log.getvalue() and "so both keep working" in log.getvalue()
    still_serving("run")

    with pytest.warns(SocketNameWarning):
        with PluginHost(plugin, pysam_async.folder / "pysam_async.py") as host:
            assert host.function(revert).call("xyz") == "zyx"
    still_serving("a test host")

    session = DevSession(pysam_async.folder, ekuiper_server.client,
                         vendor=VendorOptions(python_version=ekuiper_server.python_version),
                         out=io.StringIO())
    try:
        cycle = session.cycle()
    finally:
        session.close()
    assert cycle.ok and (cycle.status or {}).get("status") == "running", cycle
    still_serving("a dev cycle (an update)")


FAILING = '''
import time
from ekuiper_sdk import Plugin, Sink, Source

app = Plugin("@P@")


class BadOpen(Source):
    def configure(self, datasource, conf):
        pass

    def open(self, ctx):
        raise ConnectionError("device unreachable")

    def close(self, ctx):
        pass


class BadConfigure(Sink):
    def configure(self, conf):
        raise ValueError("bad setting 'path'")

    def open(self, ctx):
        pass

    def collect(self, ctx, data):
        pass

    def close(self, ctx):
        pass


app.source("@P@_open")(BadOpen)
app.sink("@P@_conf")(BadConfigure)


@app.source("@P@_ends")
def ends(ctx, datasource, conf):
    yield {"n": 0}
    time.sleep(0.2)
    raise RuntimeError("lost the feed")


@app.source("@P@_ok")
def ok(ctx, datasource, conf):
    while True:
        ctx.emit_error("sensor 7 out of range")
        yield {"n": 1}
        time.sleep(0.5)


if __name__ == "__main__":
    app.run()
'''


def test_plugin_errors_reach_the_rules_status(ekuiper_server: RealEkuiper,
                                              tmp_path: Path) -> None:
    """What docs/reliability.md's table says eKuiper shows for each failure."""
    import time

    name = f"fail_{os.getpid()}_{random.getrandbits(24):06x}"
    folder = tmp_path / name
    (folder / "sources").mkdir(parents=True)
    (folder / f"{name}.py").write_text(FAILING.replace("@P@", name))
    sources = [f"{name}_open", f"{name}_ends", f"{name}_ok"]
    for source in sources:
        (folder / "sources" / f"{source}.yaml").write_text("default:\n  x: 1\n")
    (folder / f"{name}.json").write_text(json.dumps({
        "version": "v1.0.0", "language": "python", "executable": f"{name}.py",
        "sources": sources, "sinks": [f"{name}_conf"]}))
    ekuiper_server.install(folder)
    for source in sources:
        ekuiper_server.create_stream(f"{source}_s", source)
        ekuiper_server.create_rule(f"{source}_r", f"SELECT * FROM {source}_s", [{"log": {}}])
    ekuiper_server.create_rule(f"{name}_conf_r", f"SELECT * FROM {name}_ok_s",
                               [{f"{name}_conf": {}}])
    expected = {f"{name}_open": "open failed: ConnectionError: device unreachable",
                f"{name}_ends": "failed and sends nothing more: RuntimeError: lost the feed",
                f"{name}_ok": "error: sensor 7 out of range"}
    deadline = time.monotonic() + 15
    for source, text in expected.items():
        while True:
            status = ekuiper_server.rule_status(f"{source}_r")
            seen = status.get(f"source_{source}_s_0_last_exception", "")
            if f"source '{source}' {text}" in seen:
                break
            assert time.monotonic() < deadline, (source, status)
            time.sleep(0.2)
        assert status["status"] == "running"
        assert status[f"source_{source}_s_0_exceptions_total"] >= 1
    # A configure that raises refuses the start: eKuiper stops the rule and, in v2.4,
    # leaves its message empty (the text is only in eKuiper's log).
    while ekuiper_server.rule_status(f"{name}_conf_r")["status"] != "stopped by error":
        assert time.monotonic() < deadline + 10
        time.sleep(0.2)
