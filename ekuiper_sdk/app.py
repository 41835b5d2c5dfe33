"""``Plugin``: a plugin written with decorators, sync or async.

::

    app = Plugin("pysam")

    @app.source("pyjson")
    async def pyjson(ctx, datasource, conf):
        while True:
            yield {"name": "pyjson", "value": 2021}
            await asyncio.sleep(0.2)

    @app.sink("print")
    def print_sink(ctx, record):
        ctx.logger.info("%s", record)

    @app.function("revert")
    def revert(s: str) -> str:
        return s[::-1]

    if __name__ == "__main__":
        app.run()

Each decorator registers an adapter from :mod:`ekuiper_sdk.decorators.adapters` and returns the
decorated object unchanged (so it stays callable in unit tests). ``run`` builds a
``PluginConfig`` and calls ``plugin.start``: both styles share one runtime.
"""

from __future__ import annotations

import os
from typing import Any, Callable, TypeVar, cast

from . import plugin, state
from .api import Function, Sink, Source
from .decorators import adapters
from .decorators import records as _records
from .decorators.records import RecordMode
from .plugin import FunctionFactory, PluginConfig, SinkFactory, SourceFactory
from .runtime import protocol

T = TypeVar("T")
B = TypeVar("B", Source, Sink, Function)


class Plugin:
    """A plugin's name and symbols, registered with decorators.

    ``state_dir`` is the folder of ``ctx.state`` files (default: eKuiper's data folder
    when the plugin runs inside eKuiper, else ``state/`` beside the plugin's main script;
    the environment variable ``EKUIPER_SDK_STATE_DIR`` overrides both; see
    :mod:`ekuiper_sdk.state`).

    >>> app = Plugin("demo")
    >>> @app.function("revert")
    ... def revert(s: str) -> str:
    ...     return s[::-1]
    >>> app.symbol_names()
    {'name': 'demo', 'sources': [], 'sinks': [], 'functions': ['revert']}
    """

    def __init__(self, name: str, *,
                 state_dir: str | os.PathLike[str] | None = None,
                 supervise: bool = False, call_limit: float | None = None) -> None:
        protocol.check_name("plugin name", name)
        self.name = name
        self.supervise = supervise
        self.call_limit = call_limit
        self.state_dir = None if state_dir is None else os.fspath(state_dir)
        self._sources: dict[str, SourceFactory] = {}
        self._sinks: dict[str, SinkFactory] = {}
        self._functions: dict[str, FunctionFactory] = {}
        # What the UI metadata is made from: the decorated objects, not their adapters.
        self._described: dict[str, dict[str, dict[str, Any]]] = {
            "sources": {}, "sinks": {}, "functions": {}}

    # -- decorators

    def source(self, name: str | None = None, *, config: type | None = None,
               call_limit: float | None = None) -> Callable[[T], T]:
        """Register a source: a generator or async generator taking ``(ctx, datasource, conf)``
        whose items are emitted, a function (sync or async) with that signature that emits
        with ``ctx.emit``, or a ``Source`` subclass. ``name`` defaults to the Python name.
        ``config``, a dataclass or TypedDict, declares the configuration: ``conf`` (or
        ``configure``'s argument) is then an instance of it, checked and converted (see
        :mod:`ekuiper_sdk.typed_config`), and ``pack`` describes it in the UI metadata.
        ``call_limit`` (here and on ``sink`` and ``function``) is this symbol's own limit
        for a stuck call, in seconds (docs/reliability.md, "Hung calls").

        Example::

            @app.source("ticks")
            async def ticks(ctx, datasource, conf):
                n = ctx.state.get("n", 0)
                while True:
                    n += 1
                    yield {"n": n}              # or ({"n": n}, {"topic": datasource})
                    ctx.state["n"] = n
                    await asyncio.sleep(float(conf.get("interval", 1)))
        """
        _check_decorator_use("source", name)
        _check_config("source", config)

        def register(target: T) -> T:
            symbol = self._claim("source", self._sources, name, target)
            self._sources[symbol] = _limited(_typed(self._factory(
                "source", symbol, target, Source,
                lambda fn: adapters.SourceAdapter(symbol, fn, config)), target, Source, config),
                call_limit)
            self._described["sources"][symbol] = {"target": target, "config": config}
            return target

        return register

    def sink(self, name: str | None = None, *, records: RecordMode | None = None,
             config: type | None = None, call_limit: float | None = None) -> Callable[[T], T]:
        """Register a sink: a function (sync or async) taking ``(ctx, record)``, a class with
        a ``collect(ctx, record)`` method and optional ``configure(conf)``, ``open(ctx)`` and
        ``close(ctx)`` (each sync or async), or a ``Sink`` subclass.

        ``records`` says what ``collect`` receives: ``"each"`` (a decoded record per call,
        the default for functions and plain classes), ``"list"`` (a frame's records in one
        list) or ``"bytes"`` (the frame as sent, the default for ``Sink`` subclasses, as in
        the official API). Returning acks the frame when the rule sets ``requireAck``;
        raising acks it with the error. ``config`` declares the configuration as for
        sources: it is checked when the rule starts, and a ``configure`` method receives it
        converted (a sink function reads the raw properties from ``ctx.config``).

        Example::

            @app.sink("print")
            def print_sink(ctx, record):
                ctx.logger.info("%s%s", ctx.config.get("prefix", ""), record)
        """
        _check_decorator_use("sink", name)
        _check_config("sink", config)
        if records is not None:
            _records.check_mode(records)
        mode = records

        def register(target: T) -> T:
            symbol = self._claim("sink", self._sinks, name, target)
            factory: SinkFactory
            # A Sink subclass keeps the official behaviour (bytes, no adapter) unless it
            # asks for records; any other class is read through its collect method.
            if isinstance(target, type) and not (issubclass(target, Sink)
                                                 and mode in (None, _records.BYTES)):
                if not callable(getattr(target, "collect", None)):
                    raise TypeError(f"sink {symbol!r}: {target.__name__} has no "
                                    "collect(ctx, record) method")
                factory = adapters.decode_records(target, mode or _records.EACH, symbol, config)
            else:
                factory = _typed(self._factory(
                    "sink", symbol, target, Sink,
                    lambda fn: adapters.SinkAdapter(symbol, fn, mode, config_type=config)),
                    target, Sink, config)
            self._sinks[symbol] = _limited(factory, call_limit)
            self._described["sinks"][symbol] = {"target": target, "config": config}
            return target

        return register

    def function(self, name: str | None = None, *, aggregate: bool = False,
                 validate: Callable[[list[Any]], Any] | None = None,
                 call_limit: float | None = None) -> Callable[[T], T]:
        """Register a function rules call from SQL: a function (sync or async) or a
        ``Function`` subclass.

        A rule whose call does not fit the Python parameters is refused when it is created
        ("revert takes 1 argument, got 2"); a first parameter named ``ctx`` or ``context``
        (or annotated ``Context``) receives the call's context. With ``aggregate=True``
        each argument is the list of the group's values. ``validate(args)`` may refuse
        more, returning the reason (``""`` accepts); only ``len(args)`` is dependable.

        Example::

            @app.function("avg2", aggregate=True)
            def avg2(values: list) -> float:
                return sum(values) / len(values) if values else 0.0
        """
        _check_decorator_use("function", name)
        check = validate

        def register(target: T) -> T:
            symbol = self._claim("function", self._functions, name, target)
            self._functions[symbol] = _limited(self._factory(
                "function", symbol, target, Function,
                lambda fn: adapters.FunctionAdapter(symbol, fn, aggregate, check)), call_limit)
            self._described["functions"][symbol] = {"target": target, "aggregate": aggregate}
            return target

        return register

    # -- running

    def config(self) -> PluginConfig:
        """The ``PluginConfig`` of the symbols registered so far."""
        config = PluginConfig(self.name, self._sources, self._sinks, self._functions,
                              supervise=self.supervise, call_limit=self.call_limit)
        config.described = {kind: dict(table) for kind, table in self._described.items()}
        return config

    def symbol_names(self) -> dict[str, object]:
        """The plugin's name and symbol names, as a manifest lists them."""
        return self.config().symbol_names()

    def run(self, argv: list[str] | None = None) -> None:
        """Serve the symbols to eKuiper until it goes away (see ``plugin.start``)."""
        if not (self._sources or self._sinks or self._functions):
            raise RuntimeError(f"Plugin({self.name!r}) has no symbols; register some with "
                               "@app.source, @app.sink or @app.function before app.run()")
        state.set_default_dir(self.state_dir)
        plugin.start(self.config(), argv)

    def _factory(self, kind: str, symbol: str, target: object, base: type,
                 adapt: Callable[[Callable[..., Any]], B]) -> Callable[[], B]:
        """The factory of a decorated target: a subclass of the official base class is its
        own factory; a callable is wrapped by ``adapt``, once now, so that a signature that
        does not fit fails at import rather than at the rule's start."""
        if isinstance(target, type) and issubclass(target, base):
            return cast(Callable[[], B], target)
        if not callable(target):
            raise TypeError(f"@{self.name}.{kind}({symbol!r}) decorates a function or a "
                            f"{base.__name__} subclass, not {type(target).__name__}")
        fn: Callable[..., Any] = target
        adapt(fn)
        return lambda: adapt(fn)

    def _claim(self, kind: str, table: dict[str, Any], name: str | None,
               target: object) -> str:
        symbol = name if name is not None else getattr(target, "__name__", None)
        if not isinstance(symbol, str):
            raise TypeError(f"give the {kind} a name: @app.{kind}('name')")
        protocol.check_name(f"{kind} name", symbol)
        if symbol in table:
            raise ValueError(f"{kind} {symbol!r} is defined twice in Plugin({self.name!r}); "
                             "give each a name of its own")
        return symbol

    def __repr__(self) -> str:
        return (f"Plugin({self.name!r}, sources={sorted(self._sources)}, "
                f"sinks={sorted(self._sinks)}, functions={sorted(self._functions)})")



def _limited(factory: Callable[[], B], call_limit: float | None) -> Callable[[], B]:
    """``factory``, whose instances carry ``call_limit`` (the attribute the runtime reads
    for a symbol's own limit, as a class attribute of a class-style symbol does).

    >>> class Slow: ...
    >>> _limited(Slow, 60.0)().call_limit
    60.0
    """
    if call_limit is None:
        return factory
    return _setting(factory, "call_limit", call_limit)


def _check_config(kind: str, config: object) -> None:
    if config is None:
        return
    from .typed_config import is_config_type

    if not is_config_type(config):
        raise TypeError(f"@app.{kind}(config=...) takes a dataclass or TypedDict class, "
                        f"not {config!r}")


def _typed(factory: Callable[[], B], target: object, base: type,
           config: type | None) -> Callable[[], B]:
    """A subclass of the official class is its own factory; with a declared configuration,
    its instances carry it as ``config_type`` so that the runtime converts ``configure``'s
    argument (adapters convert it themselves)."""
    if config is None or not (isinstance(target, type) and issubclass(target, base)):
        return factory
    return _setting(factory, "config_type", config)


def _setting(factory: Callable[[], B], name: str, value: object) -> Callable[[], B]:
    """``factory``, whose every instance gets ``value`` as its attribute ``name``."""
    def make() -> B:
        instance = factory()
        setattr(instance, name, value)
        return instance

    return make


def _check_decorator_use(kind: str, name: object) -> None:
    if callable(name):
        raise TypeError(f"@app.{kind} needs parentheses: @app.{kind}() or "
                        f"@app.{kind}('name')")
