"""``Source``, ``Sink`` and ``Function`` implementations around plain callables.

The decorator API (``ekuiper_sdk.app``) compiles down to these: each adapter is an
ordinary symbol of the class API, so the one runtime runs both styles. They can also be
used directly in a ``PluginConfig``.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Callable

from ..api import Context, Function, Sink, Source
from ..errors import CallTimeout, ChannelStopped, EncodeError, SendTimeout, SourceFailed
from ..runtime import protocol
from ..typed_config import config_type_of, convert
from . import event_loops, records, signatures

if TYPE_CHECKING:
    import asyncio  # imported where async code runs (see event_loops)

#: How long closing a source waits for its generator to end (its ``finally`` to run).
SOURCE_STOP_WAIT_S = 2.0
#: eKuiper waits 5 s for a function's answer; an async call is cancelled after that.
FUNCTION_TIMEOUT_S = 5.0

# Kinds of source callables.
ASYNC_GENERATOR = "async generator"
GENERATOR = "generator"
COROUTINE = "coroutine function"
PLAIN = "function"


def source_kind(fn: Callable[..., Any]) -> str:
    """How a source callable produces data.

    >>> def ticks(ctx, datasource, conf):
    ...     yield {"n": 1}
    >>> source_kind(ticks)
    'generator'
    """
    if inspect.isasyncgenfunction(fn):
        return ASYNC_GENERATOR
    if inspect.isgeneratorfunction(fn):
        return GENERATOR
    if event_loops.is_async_callable(fn):
        return COROUTINE
    return PLAIN


def split_item(item: Any) -> tuple[Any, Any]:
    """What a source generator yields: a message, or a ``(message, meta)`` pair.

    >>> split_item(({"a": 1}, {"topic": "t"}))
    ({'a': 1}, {'topic': 't'})
    """
    if isinstance(item, tuple) and len(item) == 2:
        return item[0], item[1]
    return item, None


class SourceAdapter(Source):
    """A source made of one callable taking ``(ctx, datasource, conf)``.

    - an async generator or a generator: each item it yields is emitted (``None`` is
      skipped); when it ends, the source has finished and sends nothing more; when the
      rule stops, an async generator is cancelled at its current ``await`` and a
      generator is closed at its next ``yield``, so their ``finally`` blocks run;
    - an ``async def`` or a plain function: it emits with ``ctx.emit``; an async one is
      cancelled when the rule stops, a plain one gets ``SymbolStopped`` from its next
      ``ctx.emit``.

    An item that cannot be emitted (not a dict, not JSON-able, eKuiper not reading) is
    logged and skipped. An exception from the callable is logged with its traceback; the
    source then sends nothing more until the rule restarts.

    >>> async def ticks(ctx, datasource, conf):
    ...     yield {"n": 1}
    >>> SourceAdapter("ticks", ticks).kind
    'async generator'
    """

    def __init__(self, symbol: str, fn: Callable[..., Any],
                 config_type: type | None = None) -> None:
        signatures.check_callable("source", symbol, fn, "ctx, datasource, conf")
        self.symbol = symbol
        self.fn = fn
        self._config_type = config_type_of(fn, config_type)  # the one rule: typed_config
        self.kind = source_kind(fn)
        self.datasource = ""
        self.conf: dict[str, Any] = {}
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._started = False
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def configure(self, datasource: str, conf: dict[str, Any]) -> None:
        self.datasource = datasource
        # With a declared configuration, the callable gets it checked and converted.
        self.conf = conf if self._config_type is None else convert(self._config_type, conf)

    def open(self, ctx: Context) -> None:
        with self._lock:
            if self._stopping.is_set():
                self._done.set()
                return
            self._started = True
        try:
            if self.kind in (ASYNC_GENERATOR, COROUTINE):
                self._run_async(ctx)
            elif self.kind == GENERATOR:
                self._run_generator(ctx, self.fn(ctx, self.datasource, self.conf))
            else:
                self.fn(ctx, self.datasource, self.conf)
            if not self._stopping.is_set():
                ctx.logger.info("source %r finished: its %s returned", self.symbol, self.kind)
        except ChannelStopped:
            pass  # the rule stopped: the expected end (an async one's end: _run_async)
        except Exception as exc:  # noqa: BLE001 - a plugin's bug is reported, never fatal
            if not self._stopping.is_set():
                ctx.logger.exception("source %r failed and sends nothing more until its rule "
                                     "restarts", self.symbol)
                # The runner reports it to the rule (a frame eKuiper counts as an error).
                raise SourceFailed("failed and sends nothing more: "
                                   + protocol.exception_line(exc)) from None
        finally:
            self._done.set()

    def close(self, ctx: Context) -> None:
        with self._lock:
            self._stopping.set()
            started, loop, task = self._started, self._loop, self._task
        if loop is not None and task is not None:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:
                pass  # the loop already closed: the task is over
        if started and not self._done.wait(SOURCE_STOP_WAIT_S):
            ctx.logger.warning("source %r did not end within %g s of its rule stopping (a "
                               "generator stops at its next yield)", self.symbol,
                               SOURCE_STOP_WAIT_S)

    # -- ways of running

    def _run_generator(self, ctx: Context, gen: Iterator[Any]) -> None:
        try:
            for item in gen:
                if self._stopping.is_set():
                    break
                self._emit(ctx, item)
        finally:
            # Here, on the generator's own thread: closing it from another thread
            # would fail while it runs.
            close = getattr(gen, "close", None)
            if close is not None:
                close()

    def _run_async(self, ctx: Context) -> None:
        import asyncio

        loop = asyncio.new_event_loop()
        try:
            asyncio.set_event_loop(loop)
            task = loop.create_task(self._main(ctx))
            with self._lock:
                if self._stopping.is_set():
                    task.cancel()
                self._loop, self._task = loop, task
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            pass  # the rule stopped: the expected end
        finally:
            with self._lock:
                self._loop = self._task = None
            event_loops.finish_loop(loop)
            asyncio.set_event_loop(None)

    async def _main(self, ctx: Context) -> None:
        if self.kind == COROUTINE:
            await self.fn(ctx, self.datasource, self.conf)
            return
        agen: AsyncIterator[Any] = self.fn(ctx, self.datasource, self.conf)
        try:
            async for item in agen:
                if self._stopping.is_set():
                    break
                self._emit(ctx, item)
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None:
                await aclose()

    def _emit(self, ctx: Context, item: Any) -> None:
        if item is None:
            return
        message, meta = split_item(item)
        try:
            ctx.emit(message, meta)
        except (EncodeError, SendTimeout) as exc:
            ctx.logger.error("source %r: an item was dropped: %s", self.symbol, exc)


class SinkAdapter(Sink):
    """A sink whose parts are callables, each sync or async, receiving decoded records.

    ``collect`` is called with ``(ctx, record)`` per record, or per frame, as the mode
    says (see :mod:`.records`); ``configure(conf)``, ``open(ctx)`` and
    ``close(ctx)`` are optional. Async parts run on an event loop of this instance's own.
    With ``requireAck``, a frame is acked once its calls returned, and acked with an error
    by the first call that raises (the frame's later records are then not passed).

    >>> got = []
    >>> sink = SinkAdapter("keep", lambda ctx, record: got.append(record))
    >>> sink.configure({"sendSingle": False}); sink.collect(None, b'[{"a":1},{"a":2}]')
    >>> got
    [{'a': 1}, {'a': 2}]
    """

    def __init__(self, symbol: str, collect: Callable[..., Any],
                 records_mode: str | None = None,
                 configure: Callable[..., Any] | None = None,
                 open: Callable[..., Any] | None = None,
                 close: Callable[..., Any] | None = None,
                 config_type: type | None = None) -> None:
        signatures.check_callable("sink", symbol, collect, "ctx, record")
        self._config_type = config_type_of(collect, config_type)  # the one rule: typed_config
        self.symbol = symbol
        self.mode = records.check_mode(records_mode or records.EACH)
        self._collect_fn = collect
        self._configure_fn = configure
        self._open_fn = open
        self._close_fn = close
        self._decoder = records.RecordDecoder({}, self.mode)
        self._loop: event_loops.LoopThread | None = None

    def _loop_thread(self) -> event_loops.LoopThread:
        if self._loop is None:
            self._loop = event_loops.LoopThread(f"sink {self.symbol}")
        return self._loop

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return event_loops.call_maybe_async(self._loop_thread, fn, *args)

    def configure(self, conf: dict[str, Any]) -> None:
        # The decoder reads eKuiper's own keys (sendSingle...) from the raw properties; a
        # declared configuration is checked here, and a configure method gets it converted.
        typed = conf if self._config_type is None else convert(self._config_type, conf)
        self._decoder = records.RecordDecoder(conf, self.mode)
        if self._configure_fn is not None:
            try:
                self._call(self._configure_fn, typed)
            except BaseException:
                self._stop_loop()  # this instance will never be opened or closed
                raise

    def open(self, ctx: Context) -> None:
        if self._open_fn is not None:
            self._call(self._open_fn, ctx)

    def collect(self, ctx: Context, data: Any) -> None:
        # event_loops.call_maybe_async inlined: this runs per record, and the call is a tenth of
        # a record's cost in a decoded sink (docs/performance.md).
        fn = self._collect_fn
        for record in self._decoder.decode(data):
            result = fn(ctx, record)
            if result is not None and inspect.isawaitable(result):
                self._loop_thread().call(result)

    def close(self, ctx: Context) -> None:
        try:
            if self._close_fn is not None:
                self._call(self._close_fn, ctx)
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        if self._loop is not None:
            self._loop.close()
            self._loop = None


def sink_from_object(symbol: str, obj: Any, records_mode: str | None = None,
                     config_type: type | None = None) -> SinkAdapter:
    """A :class:`SinkAdapter` over an object's ``collect`` and optional ``configure``,
    ``open`` and ``close`` methods (a ``Sink`` subclass, or any class with those names)."""
    collect = getattr(obj, "collect", None)
    if not callable(collect):
        raise TypeError(f"sink {symbol!r}: {type(obj).__name__} has no collect(ctx, record) "
                        "method")
    return SinkAdapter(symbol, collect, records_mode,
                       configure=getattr(obj, "configure", None),
                       open=getattr(obj, "open", None), close=getattr(obj, "close", None),
                       config_type=config_type_of(obj, config_type))


def decode_records(factory: Callable[[], Any], mode: str = records.EACH,
                   symbol: str = "", config_type: type | None = None) -> Callable[[], Sink]:
    """Wrap a sink factory so its ``collect`` receives decoded records instead of bytes.

    This is how a class written for the official API opts in to records inside a
    ``PluginConfig``:

    >>> class Printer(Sink):
    ...     def collect(self, ctx, data): print(data)
    >>> sink = decode_records(Printer)()
    >>> sink.configure({"sendSingle": True}); sink.collect(None, b'{"a": 1}')
    {'a': 1}
    """
    mode = records.check_mode(mode, "mode")
    name = symbol or getattr(factory, "__name__", "sink")

    def make() -> Sink:
        return sink_from_object(name, factory(), mode, config_type)

    return make


class FunctionAdapter(Function):
    """A function made of one callable, sync or async, checked against its signature.

    ``validate`` answers from the parameters (see :mod:`.signatures`), then
    asks ``check`` if one was given. ``exec`` calls the callable with the SQL arguments,
    after the context when its first parameter is ``ctx``; an aggregate gets ``[]`` for a
    group with no values, where eKuiper sends null. An async callable runs on a
    loop of this function's own and is cancelled after ``FUNCTION_TIMEOUT_S``.

    >>> f = FunctionAdapter("revert", lambda s: s[::-1])
    >>> f.validate(["a", "b"]), f.exec(["abc"], None)
    ('revert takes 1 argument, got 2', 'cba')
    """

    def __init__(self, symbol: str, fn: Callable[..., Any], aggregate: bool = False,
                 check: Callable[[list[Any]], Any] | None = None) -> None:
        self.symbol = symbol
        self.fn = fn
        self.arity = signatures.arity_of(fn, symbol)
        self.aggregate = bool(aggregate)
        self.check = check
        self._loop: event_loops.LoopThread | None = None
        self._loop_lock = threading.Lock()

    def validate(self, args: list[Any]) -> str:
        problem = self.arity.problem(len(args))
        if problem or self.check is None:
            return problem
        answer = self.check(args)
        return str(answer) if answer else ""

    def exec(self, args: list[Any], ctx: Context) -> Any:
        problem = self.arity.problem(len(args))
        if problem:
            raise TypeError(problem)
        if self.aggregate:
            # eKuiper sends null for the values of an empty group (a window in which no
            # row passed the WHERE clause): the function gets the empty list it declares.
            args = [[] if arg is None else arg for arg in args]
        call_args: list[Any] = [ctx, *args] if self.arity.wants_context else list(args)
        result = self.fn(*call_args)
        if inspect.isawaitable(result):
            try:
                return self._loop_thread().call(result, FUNCTION_TIMEOUT_S)
            except CallTimeout:
                raise TimeoutError(f"{self.symbol} did not return within "
                                   f"{FUNCTION_TIMEOUT_S:g} s (eKuiper's limit)") from None
        return result

    def is_aggregate(self) -> bool:
        return self.aggregate

    def _loop_thread(self) -> event_loops.LoopThread:
        with self._loop_lock:
            if self._loop is None:
                self._loop = event_loops.LoopThread(f"function {self.symbol}")
            return self._loop
