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
