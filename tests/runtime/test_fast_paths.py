"""The per-frame paths keep their guarantees: order, nothing lost on stop, prompt close."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import pynng
import pytest

from ekuiper_sdk import errors
from ekuiper_sdk.api import Context, Function, Sink
from ekuiper_sdk.runtime import channels, protocol
from ekuiper_sdk.runtime import function as function_module
from ekuiper_sdk.runtime.function import FunctionRunner
from ekuiper_sdk.runtime.sink import SinkRunner
from ekuiper_sdk.testing import wait_for


def unique(stem: str) -> str:
    return f"{stem}{os.getpid()}x{time.monotonic_ns() % 10**9}"


class Recorder(Sink):
    def __init__(self, delay: float = 0.0) -> None:
        self.frames: list[bytes] = []
        self.delay = delay
        self.closed = False

    def collect(self, ctx: Context, data: Any) -> None:
        if self.delay:
            time.sleep(self.delay)
        self.frames.append(data)
        ctx.ack_ok()

    def close(self, ctx: Context) -> None:
        self.closed = True


def start_sink(require_ack: bool, sink: Sink) -> tuple:
    meta = protocol.Meta(rule_id=unique("fp"), op_id="op", instance_id=0)
    acks = pynng.Pull0(recv_timeout=5000)
    acks.listen(protocol.sink_ack_url(meta))
    control = protocol.Control("rec", protocol.SINK, meta, config={"requireAck": require_ack})
    runner = SinkRunner(control, sink, "fp", 1000)
    runner.start()
    push = pynng.Push0(send_timeout=5000)
    push.dial(protocol.sink_url(meta), block=True)
    return runner, push, acks


@pytest.mark.parametrize("delay", [0.0, 0.0005])
def test_a_sink_collects_every_frame_in_order_also_those_queued_at_stop(delay: float) -> None:
    sink = Recorder(delay)
    runner, push, acks = start_sink(False, sink)
    sent = [json.dumps({"i": i}).encode() for i in range(3000)]
    try:
        for frame in sent:
            push.send(frame)
        wait_for(lambda: sink.frames, 10, "the first collect")
        time.sleep(0.2)  # let the frames written so far reach the plugin's socket
    finally:
        push.close()  # the host closes its side, then stops the rule
        runner.stop()
    assert runner.finished.wait(30)
    assert sink.frames == sent
    assert sink.closed
    acks.close()


def test_a_sink_with_require_ack_acks_each_frame() -> None:
    sink = Recorder()
    runner, push, acks = start_sink(True, sink)
    try:
        for i in range(200):
            push.send(b'{"i":%d}' % i)
            assert acks.recv() == b"{}"
    finally:
        push.close()
        runner.stop()
        assert runner.finished.wait(10)
        acks.close()
    assert len(sink.frames) == 200


def test_the_inlet_takes_frames_in_order_and_in_bounded_batches() -> None:
    url = protocol.sink_url(protocol.Meta(unique("inlet"), "op", 0))
    inlet = channels.SinkInlet(url)
    push = pynng.Push0(send_timeout=5000)
    push.dial(url, block=True)
    sent = [b"%d" % i for i in range(2000)]
    sender = threading.Thread(target=lambda: [push.send(frame) for frame in sent], daemon=True)
    sender.start()
    got: list[bytes] = []
    give_up = time.monotonic() + 10
    while len(got) < len(sent) and time.monotonic() < give_up:
        with inlet.lock:
            batch = inlet.take()
        assert batch is None or len(batch) <= channels.RECV_BATCH
        got.extend(batch or [])
    sender.join(10)
    with inlet.lock:
        assert inlet.finish() == []
    assert inlet.closed
    push.close()
    assert got == sent


class Stuck(Recorder):
    """A sink whose collect blocks until released."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = threading.Event()
        self.go_on = threading.Event()

    def collect(self, ctx: Context, data: Any) -> None:
        self.inside.set()
        self.go_on.wait(30)
        super().collect(ctx, data)


def test_a_stop_during_a_stuck_collect_frees_the_socket_and_keeps_the_frames() -> None:
    sink = Stuck()
    runner, push, acks = start_sink(False, sink)
    sent = [b'{"i":%d}' % i for i in range(50)]
    try:
        for frame in sent:
            push.send(frame)
        assert sink.inside.wait(10)
        time.sleep(0.2)  # let the frames written so far reach the plugin's socket
    finally:
        push.close()
        runner.stop()
    # The URL is free while collect is still stuck: a restarted rule can listen again.
    assert runner.released.wait(10)
    assert not sink.frames
    again = channels.SinkInlet(runner.inlet.url)
    again.close()
    sink.go_on.set()
    assert runner.finished.wait(10)
    assert sink.frames == sent
    acks.close()


def test_closing_a_source_releases_a_sender_blocked_on_a_host_that_does_not_read() -> None:
    url = protocol.source_url(protocol.Meta(unique("src"), "op", 0))
    host = pynng.Pull0()  # listens, never reads: the sender ends up blocked
    host.listen(url)
    outlet = channels.Outlet(url, 60_000, "source", channels.SOURCE_SEND_BUFFER)
    outcome: list[BaseException] = []

    def emit_forever() -> None:
        try:
            while True:
                outlet.send(b'{"message":{},"meta":null}')
        except BaseException as exc:  # noqa: BLE001 - the outcome is what is checked
            outcome.append(exc)

    sender = threading.Thread(target=emit_forever, daemon=True)
    sender.start()
    time.sleep(0.3)  # long enough to fill every buffer and block
    outlet.close()
    sender.join(10)
    host.close()
    assert not sender.is_alive()
    assert isinstance(outcome[0], errors.ChannelStopped)
    with pytest.raises(errors.ChannelStopped):
        outlet.send(b"{}")


def test_a_source_send_times_out_when_the_host_does_not_read() -> None:
    url = protocol.source_url(protocol.Meta(unique("slow"), "op", 0))
    host = pynng.Pull0()
    host.listen(url)
    outlet = channels.Outlet(url, 200, "source", channels.SOURCE_SEND_BUFFER)
    try:
        with pytest.raises(errors.SendTimeout):
            while True:
                outlet.send(b'{"message":{},"meta":null}')
    finally:
        outlet.close()
        host.close()


class Echo(Function):
    def __init__(self) -> None:
        self.contexts: list[Context] = []

    def exec(self, args: list[Any], ctx: Context) -> Any:
        self.contexts.append(ctx)
        if args == ["boom"]:
            raise ValueError("boom")
        return args

    def validate(self, args: list[Any]) -> str:
        return "" if len(args) == 1 else "one argument"


def exec_request(args: list[Any], rule: str, func_id: int) -> bytes:
    where = json.dumps({"ruleId": rule, "opId": "op", "instanceId": 0, "funcId": func_id})
    return json.dumps({"func": "Exec", "arg": [*args, where]}).encode()


def test_a_function_keeps_one_context_per_call_site() -> None:
    name = unique("fn")
    host = pynng.Rep0()
    host.listen(protocol.function_url(name))
    fn = Echo()
    runner = FunctionRunner(protocol.Control(name, protocol.FUNC), fn, "fp")
    try:
        answers = [json.loads(runner.handle(exec_request([i], "r1", 0))) for i in range(3)]
        assert answers == [{"state": True, "result": [i]} for i in range(3)]
        assert fn.contexts[0] is fn.contexts[1] is fn.contexts[2]
        runner.handle(exec_request([9], "r1", 1))
        runner.handle(exec_request([9], "r2", 0))
        assert len({id(c) for c in fn.contexts}) == 3
        assert (fn.contexts[-1].get_rule_id(), fn.contexts[-2].func_id) == ("r2", 1)  # type: ignore[attr-defined]
        # A known call site whose exec raises, and the requests that are not Exec.
        for _ in range(2):
            assert json.loads(runner.handle(exec_request(["boom"], "r1", 0))) == {
                "state": False, "result": "ValueError: boom"}
        assert json.loads(runner.handle(b'{"func":"IsAggregate","arg":null}')) == {
            "state": True, "result": False}
        assert json.loads(runner.handle(b'{"func":"Validate","arg":[1,2]}')) == {
            "state": False, "result": "one argument"}
        assert json.loads(runner.handle(b'{"func":"Exec","arg":[]}'))["state"] is False
        assert json.loads(runner.handle(b'not json'))["state"] is False
        bad = json.dumps({"func": "Exec", "arg": [1, '{"opId":"op"}']}).encode()
        for _ in range(2):  # a bad call site is refused every time, never remembered
            reply = json.loads(runner.handle(bad))
            assert reply["state"] is False and "ruleId" in reply["result"]
    finally:
        runner.channel._sock.close()
        host.close()


def test_a_function_remembers_a_bounded_number_of_call_sites_the_newest_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Rules come and go with fresh ids: the oldest sites are forgotten, new ones are
    # still cached (their next call takes the fast path).
    monkeypatch.setattr(function_module, "MAX_CALL_SITES", 50)
    name = unique("fn")
    host = pynng.Rep0()
    host.listen(protocol.function_url(name))
    fn = Echo()
    runner = FunctionRunner(protocol.Control(name, protocol.FUNC), fn, "fp")
    try:
        for rule in range(200):
            assert json.loads(runner.handle(exec_request([rule], f"r{rule}", 0)))["state"]
        assert len(runner._by_wire) == len(runner._contexts) == 50
        newest = exec_request([1], "r199", 0)
        ctx = fn.contexts[-1]
        runner.handle(newest)
        assert fn.contexts[-1] is ctx  # still known: the same context
        runner.handle(exec_request([1], "r0", 0))  # forgotten: served, with a new context
        assert fn.contexts[-1].get_rule_id() == "r0"
        assert len(runner._by_wire) == 50
    finally:
        runner.channel._sock.close()
        host.close()
