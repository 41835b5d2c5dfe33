"""The adapters from plain callables to ``Source``/``Sink``/``Function``, without sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from ekuiper_sdk import Context, Sink, SymbolStopped
from ekuiper_sdk.decorators import adapters
from ekuiper_sdk.decorators.adapters import (
    FunctionAdapter,
    SinkAdapter,
    SourceAdapter,
    decode_records,
)
from ekuiper_sdk.errors import SourceFailed
from ekuiper_sdk.runtime import protocol
from ekuiper_sdk.runtime.context import SymbolContext, instance_logger

META = protocol.Meta("rule1", "op1", 0)


class Frames:
    """Collects what a source emits; raises SymbolStopped once stopped, as the runner does."""

    def __init__(self) -> None:
        self.frames: list[Any] = []
        self.stopped = False
        self.got = threading.Event()

    def __call__(self, frame: bytes) -> None:
        if self.stopped:
            raise SymbolStopped("stopped")
        self.frames.append(json.loads(frame))
        self.got.set()

    def wait(self, n: int, timeout: float = 3.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.frames) < n:
            assert time.monotonic() < deadline, f"{len(self.frames)} of {n} frames"
            time.sleep(0.005)


def source_ctx(frames: Frames) -> SymbolContext:
    return SymbolContext(META, instance_logger("p", META, "s"), emitter=frames)


def run_source(source: SourceAdapter, ctx: Context) -> threading.Thread:
    source.configure("topic", {"k": 1})
    thread = threading.Thread(target=source.open, args=(ctx,), daemon=True)
    thread.start()
    return thread


def stop_source(source: SourceAdapter, ctx: Context, frames: Frames,
                thread: threading.Thread) -> float:
    """Stop as the runner does (socket first, then close); the seconds ``close`` took."""
    frames.stopped = True
    started = time.monotonic()
    source.close(ctx)
    took = time.monotonic() - started
    thread.join(3)
    assert not thread.is_alive()
    return took


# -- sources


def test_source_kinds() -> None:
    async def agen(ctx: Any, d: str, c: Any) -> AsyncIterator[int]:
        yield 1

    def gen(ctx: Any, d: str, c: Any) -> Iterator[int]:
        yield 1

    async def coro(ctx: Any, d: str, c: Any) -> None: ...
    def plain(ctx: Any, d: str, c: Any) -> None: ...

    assert [adapters.source_kind(f) for f in (agen, gen, coro, plain)] == [
        "async generator", "generator", "coroutine function", "function"]


def test_async_generator_is_cancelled_at_its_await_and_its_finally_runs() -> None:
    cleaned = threading.Event()

    async def ticks(ctx: Context, datasource: str, conf: dict[str, Any]) -> AsyncIterator[Any]:
        try:
            yield {"datasource": datasource, "conf": conf}
            yield ({"n": 2}, {"m": 1})
            await asyncio.sleep(60)
        finally:
            cleaned.set()

    frames = Frames()
    ctx = source_ctx(frames)
    source = SourceAdapter("ticks", ticks)
    thread = run_source(source, ctx)
    frames.wait(2)
    assert frames.frames == [{"message": {"datasource": "topic", "conf": {"k": 1}}, "meta": None},
                             {"message": {"n": 2}, "meta": {"m": 1}}]
    took = stop_source(source, ctx, frames, thread)
    assert cleaned.is_set() and took < 1


def test_sync_generator_is_closed_on_its_own_thread_at_its_next_yield() -> None:
    cleaned: list[str] = []

    def ticks(ctx: Context, datasource: str, conf: dict[str, Any]) -> Iterator[Any]:
        try:
            while True:
                yield {"n": 1}
                time.sleep(0.01)
        finally:
            cleaned.append(threading.current_thread().name)

    frames = Frames()
    ctx = source_ctx(frames)
    source = SourceAdapter("ticks", ticks)
    thread = run_source(source, ctx)
    frames.wait(2)
    stop_source(source, ctx, frames, thread)
    assert cleaned == [thread.name]


def test_a_generator_that_ends_finishes_and_one_that_raises_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    def two(ctx: Any, d: str, c: Any) -> Iterator[Any]:
        yield {"a": 1}
        yield None
        yield {"a": 2}

    async def broken(ctx: Any, d: str, c: Any) -> AsyncIterator[Any]:
        yield {"a": 1}
        raise ValueError("sensor unplugged")

    caplog.set_level(logging.INFO, logger="ekuiper_sdk")
    for fn, text in ((two, "finished: its generator returned"),
                     (broken, "failed and sends nothing more")):
        frames = Frames()
        ctx = source_ctx(frames)
        source = SourceAdapter(fn.__name__, fn)
        source.configure("", {})
        if fn is broken:
            # Logged here, and raised for the runner to report to the rule.
            with pytest.raises(SourceFailed, match="^failed and sends nothing more: "
                                                   "ValueError: sensor unplugged$"):
                source.open(ctx)
        else:
            source.open(ctx)  # returns by itself
        assert [f["message"] for f in frames.frames][:1] == [{"a": 1}]
        assert text in caplog.text
        source.close(ctx)  # still fine afterwards, and quick
    assert "ValueError: sensor unplugged" in caplog.text
    assert len([r for r in caplog.records if "two" in r.getMessage()]) == 1


def test_items_that_cannot_be_emitted_are_logged_and_skipped(
        caplog: pytest.LogCaptureFixture) -> None:
    def items(ctx: Any, d: str, c: Any) -> Iterator[Any]:
        yield [1, 2]
        yield {"bad": object()}
        yield {"ok": 1}

    frames = Frames()
    source = SourceAdapter("items", items)
    source.configure("", {})
    source.open(source_ctx(frames))
    assert [f["message"] for f in frames.frames] == [{"ok": 1}]
    assert caplog.text.count("an item was dropped") == 2


def test_coroutine_and_plain_sources_emit_with_ctx_emit() -> None:
    async def coro(ctx: Context, d: str, c: Any) -> None:
        while True:
            ctx.emit({"n": 1})
            await asyncio.sleep(60)

    def plain(ctx: Context, d: str, c: Any) -> None:
        while True:  # SymbolStopped from emit ends it
            ctx.emit({"n": 2})
            time.sleep(0.01)

    for fn in (coro, plain):
        frames = Frames()
        ctx = source_ctx(frames)
        source = SourceAdapter("s", fn)
        thread = run_source(source, ctx)
        frames.wait(1)
        assert stop_source(source, ctx, frames, thread) < 1


def test_close_before_open_runs_nothing() -> None:
    ran = []

    async def agen(ctx: Any, d: str, c: Any) -> AsyncIterator[Any]:
        ran.append(1)
        yield {"a": 1}

    frames = Frames()
    ctx = source_ctx(frames)
    source = SourceAdapter("s", agen)
    source.close(ctx)
    source.open(ctx)
    assert ran == [] and frames.frames == []


def test_a_source_with_the_wrong_parameters_is_refused_at_once() -> None:
    with pytest.raises(TypeError, match=r"source 's' must take \(ctx, datasource, conf\)"):
        SourceAdapter("s", lambda ctx: None)


# -- sinks


class Acks:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def __call__(self, frame: bytes) -> None:
        self.frames.append(frame)


def sink_ctx(config: dict[str, Any] | None = None) -> SymbolContext:
    return SymbolContext(META, instance_logger("p", META, "k"), acker=Acks(),
                         config=config or {})


def test_sync_and_async_sinks_get_records() -> None:
    got: list[Any] = []

    def sync_sink(ctx: Context, record: Any) -> None:
        got.append(("sync", record))

    async def async_sink(ctx: Context, record: Any) -> None:
        await asyncio.sleep(0)
        got.append(("async", threading.current_thread().name))

    for fn in (sync_sink, async_sink):
        sink = SinkAdapter("k", fn)
        sink.configure({})
        ctx = sink_ctx()
        sink.open(ctx)
        sink.collect(ctx, b'[{"a":1},{"a":2}]')
        sink.close(ctx)
    assert got[:2] == [("sync", {"a": 1}), ("sync", {"a": 2})]
    assert [kind for kind, _ in got[2:]] == ["async", "async"]
    assert got[2][1].startswith("asyncio sink k")  # the instance's own loop thread


def test_the_first_record_that_raises_fails_the_frame() -> None:
    got: list[Any] = []

    def sink_fn(ctx: Context, record: Any) -> None:
        if record == 2:
            raise IOError("disk full")
        got.append(record)

    sink = SinkAdapter("k", sink_fn)
    sink.configure({})
    with pytest.raises(OSError, match="disk full"):
        sink.collect(sink_ctx(), b"[1, 2, 3]")
    assert got == [1]


def test_a_plain_class_with_async_parts_and_its_loop_is_closed() -> None:
    calls: list[str] = []

    class Store:
        def configure(self, conf: dict[str, Any]) -> None:
            calls.append(f"configure {conf['url']}")

        async def open(self, ctx: Context) -> None:
            self.loop = asyncio.get_running_loop()
            calls.append("open")

        async def collect(self, ctx: Context, record: Any) -> None:
            assert asyncio.get_running_loop() is self.loop  # one loop for the instance
            calls.append(f"collect {record}")

        async def close(self, ctx: Context) -> None:
            calls.append("close")

    sink = decode_records(Store, "list", "store")()
    sink.configure({"url": "u", "sendSingle": True})
    ctx = sink_ctx()
    sink.open(ctx)
    sink.collect(ctx, b'{"a":1}')
    sink.close(ctx)
    assert calls == ["configure u", "open", "collect [{'a': 1}]", "close"]
    assert isinstance(sink, SinkAdapter) and sink._loop is None


def test_an_official_sink_class_opts_in_to_records() -> None:
    got: list[Any] = []

    class Printer(Sink):
        def collect(self, ctx: Context, data: Any) -> None:
            got.append(data)

    sink = decode_records(Printer)()
    sink.configure({"format": "json"})
    sink.collect(sink_ctx(), b'[{"a":1}]')
    assert got == [{"a": 1}]


def test_a_failing_async_configure_stops_the_instance_loop() -> None:
    class Bad:
        async def configure(self, conf: dict[str, Any]) -> None:
            raise ValueError("no url")

        def collect(self, ctx: Context, record: Any) -> None: ...

    sink = decode_records(Bad)()
    with pytest.raises(ValueError, match="no url"):
        sink.configure({})
    assert isinstance(sink, SinkAdapter) and sink._loop is None


def test_a_sink_with_the_wrong_parameters_is_refused_at_once() -> None:
    with pytest.raises(TypeError, match=r"sink 'k' must take \(ctx, record\)"):
        SinkAdapter("k", lambda record: None)
    with pytest.raises(TypeError, match="has no collect"):
        decode_records(object)()


# -- functions


def func_ctx(func_id: int = 0) -> SymbolContext:
    return SymbolContext(META, instance_logger("p", META, "f", func_id), func_id=func_id)


def test_function_calls_sync_async_and_with_context() -> None:
    async def slow_upper(s: str) -> str:
        await asyncio.sleep(0)
        return s.upper()

    def where(ctx: Context, x: int) -> Any:
        return [ctx.rule_id, ctx.func_id, x]

    assert FunctionAdapter("u", slow_upper).exec(["ab"], func_ctx()) == "AB"
    assert FunctionAdapter("w", where).exec([5], func_ctx(3)) == ["rule1", 3, 5]
    with pytest.raises(TypeError, match="^w takes 1 argument, got 0$"):
        FunctionAdapter("w", where).exec([], func_ctx())


def test_function_validate_uses_the_signature_then_the_check() -> None:
    def pick(x: Any, y: Any = None) -> Any: ...

    f = FunctionAdapter("pick", pick, check=lambda args: "" if len(args) == 1 else "one only")
    assert f.validate(["a"]) == ""
    assert f.validate(["a", "b"]) == "one only"
    assert f.validate([]) == "pick takes 1 to 2 arguments, got 0"
    assert not f.is_aggregate()
    assert FunctionAdapter("pick", pick, aggregate=True).is_aggregate()


def test_an_async_function_that_overruns_is_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    cancelled = threading.Event()

    async def hang(x: Any) -> Any:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    monkeypatch.setattr(adapters, "FUNCTION_TIMEOUT_S", 0.2)
    with pytest.raises(TimeoutError, match=r"^hang did not return within 0.2 s"):
        FunctionAdapter("hang", hang).exec([1], func_ctx())
    assert cancelled.wait(2)


def test_an_aggregate_gets_an_empty_list_for_a_group_with_no_values() -> None:
    from ekuiper_sdk.decorators.adapters import FunctionAdapter

    seen = FunctionAdapter("agg", lambda values: values, aggregate=True)
    assert seen.exec([None], None) == []  # type: ignore[arg-type]
    scalar = FunctionAdapter("f", lambda value: value)
    assert scalar.exec([None], None) is None  # type: ignore[arg-type]
