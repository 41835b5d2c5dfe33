"""The decorator API end to end: a real plugin process (tests/plugins/app_style) driven by
``ekuiper_sdk.testing`` over real IPC sockets."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import PLUGINS

from ekuiper_sdk.testing import (
    FunctionError,
    HostError,
    InvalidFrameError,
    PluginHost,
    SinkAckError,
)
from ekuiper_sdk.testing.source_config import STREAM_PROPERTIES

PLUGIN = PLUGINS / "app_style" / "main.py"


def unique(prefix: str) -> str:
    # IPC paths are shared by every run on the machine: pid and random bits keep ours apart.
    return f"{prefix}{os.getpid()}_{random.getrandbits(32):08x}"


class App:
    """The running test plugin, its symbol names and its folders."""

    def __init__(self, host: PluginHost, suffix: str, marks: Path, state: Path) -> None:
        self.host, self.suffix, self.marks, self.state = host, suffix, marks, state

    def sym(self, name: str) -> str:
        return name + self.suffix

    def got(self, rule: str, count: int, timeout: float = 5.0) -> list[Any]:
        """The first ``count`` values a sink of ``rule`` logged, waiting for them."""
        prefix = f"GOT {rule} "
        deadline = time.monotonic() + timeout
        while True:
            found = [line.split(prefix, 1)[1] for line in self.host.output if prefix in line]
            values = [json.loads(v.split(" ", 1)[1]) for v in found if " " in v]
            if len(values) >= count or time.monotonic() > deadline:
                assert len(values) >= count, (f"{rule}: {len(values)} of {count} records; "
                                              f"output:\n{self.host.output_tail(30)}")
                return values[:count]
            time.sleep(0.02)

    def logged(self, text: str, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.host.output):
                return True
            time.sleep(0.02)
        return False


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    marks = tmp_path_factory.mktemp("marks")
    state = tmp_path_factory.mktemp("state")
    name, suffix = unique("app"), "_" + unique("s")
    env = {"PLUGIN_NAME": name, "SUFFIX": suffix, "MARKS": str(marks),
           "EKUIPER_SDK_STATE_DIR": str(state)}
    host = PluginHost(name, PLUGIN, env=env)
    host.start()
    try:
        yield App(host, suffix, marks, state)
    finally:
        host.close()


# -- sources


def test_sync_generator_items_are_emitted_and_stop_runs_its_finally(app: App) -> None:
    rule = unique("r")
    src = app.host.start_source(app.sym("sync_gen"), rule, datasource="topic",
                                config={"k": 1})
    tuples = src.take(3)
    # The config as a v2 eKuiper sends it: the stream's properties written over the yaml's.
    conf = {"k": 1, **STREAM_PROPERTIES, "datasource": "topic"}
    assert [t.message for t in tuples] == [
        {"n": n, "datasource": "topic", "conf": conf} for n in (1, 2, 3)]
    assert all(t.meta is None for t in tuples)
    src.stop()
    deadline = time.monotonic() + 3
    while not (app.marks / f"sync_gen_{rule}").exists():
        assert time.monotonic() < deadline, "the generator's finally did not run on stop"
        time.sleep(0.02)


def test_async_generator_yields_message_and_meta_and_is_cancelled_on_stop(app: App) -> None:
    rule = unique("r")
    # A long sleep between items: only a cancellation ends it promptly.
    src = app.host.start_source(app.sym("async_gen"), rule, datasource="t1",
                                config={"sleep": 30})
    first = src.recv()
    assert (first.message, first.meta) == ({"n": 1}, {"topic": "t1"})
    started = time.monotonic()
    src.stop()
    deadline = started + 2
    while not (app.marks / f"async_gen_{rule}").exists():
        assert time.monotonic() < deadline, "the async generator was not cancelled on stop"
        time.sleep(0.02)


def test_a_generator_that_ends_finishes_the_source_cleanly(app: App) -> None:
    rule = unique("r")
    src = app.host.start_source(app.sym("finite"), rule, config={"count": 2})
    assert [t.message for t in src.take(2)] == [{"i": 0}, {"i": 1}]
    with pytest.raises(HostError, match="no tuple"):
        src.recv(timeout=0.5)  # None was skipped, the list dropped
    assert app.logged("an item was dropped: a source message must be a dict, got list")
    assert app.logged(f"source '{app.sym('finite')}' finished")
    src.stop()  # the rule can still stop it: answered ok


def test_a_generator_that_raises_is_logged_with_its_error(app: App) -> None:
    rule = unique("r")
    src = app.host.start_source(app.sym("failing"), rule)
    assert src.recv().message == {"ok": True}
    with pytest.raises(InvalidFrameError) as reported:    # to the rule's metrics
        src.recv()
    assert reported.value.raw == (f"source '{app.sym('failing')}' failed and sends nothing "
                                  "more: ValueError: sensor unplugged").encode()
    assert app.logged(f"source '{app.sym('failing')}' failed and sends nothing more")
    assert app.logged("ValueError: sensor unplugged")
    src.stop()


def test_a_plain_function_source_emits_until_stopped(app: App) -> None:
    rule = unique("r")
    src = app.host.start_source(app.sym("emitter"), rule)
    tuples = src.take(3)
    assert [(t.message, t.meta) for t in tuples] == [({"n": n}, {"by": "emit"})
                                                     for n in (1, 2, 3)]
    src.stop()


# -- sinks


def test_each_mode_one_call_per_record_of_an_array_or_an_object(app: App) -> None:
    rule = unique("r")
    sink = app.host.start_sink(app.sym("each"), rule, config={"requireAck": True})
    sink.send([{"a": 1}, {"a": 2}])
    sink.send({"a": 3})
    assert app.got(rule, 3) == [{"a": 1}, {"a": 2}, {"a": 3}]
    sink.stop()


def test_each_mode_raising_acks_the_error_and_explicit_acks_still_work(app: App) -> None:
    rule = unique("r")
    sink = app.host.start_sink(app.sym("each"), rule, config={"requireAck": True})
    with pytest.raises(SinkAckError, match=r"^RuntimeError: cannot write disk full$"):
        sink.send({"fail": "disk full"})
    with pytest.raises(SinkAckError, match="^refused by the sink$"):
        sink.send({"nack": True})
    sink.send({"a": 1})  # acked ok by returning
    sink.stop()


def test_list_mode_gets_the_whole_frame_async(app: App) -> None:
    rule = unique("r")
    sink = app.host.start_sink(app.sym("batch"), rule, config={"requireAck": True})
    sink.send([{"a": 1}, {"a": 2}])
    sink.send({"a": 3})  # sendSingle: a one-element list
    assert app.got(rule, 2) == [[{"a": 1}, {"a": 2}], [{"a": 3}]]
    sink.stop()


def test_bytes_mode_and_non_json_formats_get_the_frame_as_sent(app: App) -> None:
    rule, rule2 = unique("r"), unique("r")
    raw = app.host.start_sink(app.sym("raw"), rule, config={"requireAck": True})
    raw.send({"a": 1})
    assert app.got(rule, 1) == ['{"a":1}']
    raw.stop()
    delimited = app.host.start_sink(app.sym("each"), rule2,
                                    config={"requireAck": True, "format": "delimited"})
    delimited.send(b"1,2,3")
    assert app.got(rule2, 1) == ["1,2,3"]
    delimited.stop()


def test_a_frame_that_is_not_json_is_acked_with_an_error_naming_the_fix(app: App) -> None:
    rule = unique("r")
    sink = app.host.start_sink(app.sym("each"), rule, config={"requireAck": True})
    with pytest.raises(SinkAckError, match="not JSON.*records='bytes'"):
        sink.send(b"plain text")
    sink.stop()


def test_a_plain_class_sink_with_async_parts(app: App) -> None:
    rule = unique("r")
    sink = app.host.start_sink(app.sym("klass"), rule,
                               config={"requireAck": True, "prefix": "> "})
    sink.send([{"a": 1}])
    assert app.got(rule, 1) == ['> {"a": 1}']
    sink.stop()
    assert app.logged(f"GOT {rule} klass-closed")


def test_blocking_sink_code_does_not_stall_the_control_channel(app: App) -> None:
    rule = unique("r")
    sink = app.host.start_sink(app.sym("slow"), rule)  # no requireAck: send returns at once
    sink.send({"sleep": 2})
    time.sleep(0.2)  # collect is now asleep
    started = time.monotonic()
    src = app.host.start_source(app.sym("emitter"), unique("r"))
    src.recv()
    src.stop()
    sink.stop()
    assert time.monotonic() - started < 1.5


# -- functions


def test_validate_answers_from_the_signature(app: App) -> None:
    rev = app.host.function(app.sym("rev"))
    assert rev.validate(["a"]).state
    reply = rev.validate(["a", "b"])
    assert (reply.state, reply.result) == (False, f"{app.sym('rev')} takes 1 argument, got 2")
    clamp = app.host.function(app.sym("clamp"))  # ctx, x, low=0, high=1
    assert [clamp.validate(["x"] * n).state for n in range(5)] == [False, True, True, True,
                                                                   False]
    assert clamp.validate([]).result == f"{app.sym('clamp')} takes 1 to 3 arguments, got 0"
    concat = app.host.function(app.sym("concat"))  # first, *rest
    assert concat.validate([]).result == f"{app.sym('concat')} takes at least 1 argument, got 0"
    assert concat.validate(["a"] * 7).state


def test_exec_sync_async_with_context_and_aggregate(app: App) -> None:
    assert app.host.function(app.sym("rev")).call("abc") == "cba"
    assert app.host.function(app.sym("concat")).call("a", "b", "c") == "abc"
    clamp = app.host.function(app.sym("clamp"))
    assert clamp.call(5, 0, 2, rule_id="rx", func_id=3) == {"value": 2, "rule": "rx",
                                                           "funcId": 3}
    assert not clamp.is_aggregate()
    total = app.host.function(app.sym("total"))
    assert total.is_aggregate()
    assert total.call([1, 2, 3.5]) == 6.5
    with pytest.raises(FunctionError, match="takes 1 argument, got 2"):
        app.host.function(app.sym("rev")).call("a", "b")
    with pytest.raises(FunctionError, match="^TypeError: "):
        app.host.function(app.sym("rev")).call(12)  # 12[::-1]


def test_state_survives_a_plugin_restart(tmp_path: Path) -> None:
    name, suffix = unique("app"), "_" + unique("s")
    env = {"PLUGIN_NAME": name, "SUFFIX": suffix, "MARKS": str(tmp_path),
           "EKUIPER_SDK_STATE_DIR": str(tmp_path / "state")}
    rule = unique("r")
    with PluginHost(name, PLUGIN, env=env) as host:
        src = host.start_source("resume" + suffix, rule)
        first = [t.message or {} for t in src.take(3)]
        assert [m["offset"] for m in first] == [1, 2, 3]
        old_pid = first[0]["pid"]
        calls = host.function("calls" + suffix)
        assert [calls.call(0, rule_id=rule) for _ in range(2)] == [1, 2]
        host.restart()  # SIGKILL, start again, replay the running source's start
        while True:  # skip what the killed process sent before it died
            message = src.recv().message or {}
            if message["pid"] != old_pid:
                break
        assert message["offset"] > 3  # resumed, not started over
        # Another rule has a store of its own and starts from the beginning.
        other = host.start_source("resume" + suffix, unique("r"))
        assert (other.recv().message or {})["offset"] == 1
        other.stop()
        src.stop()
        # A function's store is per rule and call site too.
        assert host.function("calls" + suffix).call(0, rule_id=rule) == 3
        assert host.function("calls" + suffix).call(0, rule_id=rule, func_id=1) == 1
