"""``PluginConfig`` and ``start``: a plugin's symbols, and the entry point that serves them.

The control loop looks symbols up in a ``PluginConfig``, so both live in the runtime, where
the official SDK keeps them too (``ekuiper.runtime.plugin``); plugin code imports them from
``ekuiper_sdk`` or ``ekuiper_sdk.plugin``::

    from ekuiper_sdk import plugin, PluginConfig
    plugin.start(PluginConfig("pysam", {"pyjson": PyJson}, {"print": PrintSink},
                              {"revert": lambda: revert}))
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any, Callable, NoReturn, TypeVar

from ..api import Function, Sink, Source
from . import protocol
from .roles import Part, decide

SourceFactory = Callable[[], Source]
SinkFactory = Callable[[], Sink]
FunctionFactory = Callable[[], Function]
F = TypeVar("F")


class PluginConfig:
    """A plugin's name and the factories of its symbols, keyed by symbol name.

    A factory is called once per running instance (once per function name for functions),
    so a class works as its own factory: ``{"pyjson": PyJson}``. With ``supervise=True``
    (or ``EKUIPER_SDK_SUPERVISE=1``) the symbols run in a worker process that is started
    again when it dies; by default the plugin is one process (docs/reliability.md).
    """

    def __init__(self, name: str, sources: Mapping[str, SourceFactory] | None = None,
                 sinks: Mapping[str, SinkFactory] | None = None,
                 functions: Mapping[str, FunctionFactory] | None = None, *,
                 supervise: bool = False, call_limit: float | None = None) -> None:
        protocol.check_name("plugin name", name)
        self.name = name
        #: Seconds after which a call into a symbol's code counts as stuck (``0`` off; by
        #: default five times eKuiper's ``sendTimeout``: docs/reliability.md, "Hung calls").
        self.call_limit = call_limit
        # Serve the symbols from a worker process restarted when it dies (``supervisor``).
        self.supervise = supervise
        self.sources: dict[str, SourceFactory] = dict(sources or {})
        self.sinks: dict[str, SinkFactory] = dict(sinks or {})
        self.functions: dict[str, FunctionFactory] = dict(functions or {})
        #: Per kind and symbol, what describes it when the factory itself cannot (the
        #: decorator API fills it with the decorated objects); read for UI metadata only.
        self.described: dict[str, dict[str, dict[str, Any]]] = {}
        for kind, table in (("source", self.sources), ("sink", self.sinks),
                            ("function", self.functions)):
            for symbol, factory in table.items():
                protocol.check_name(f"{kind} name", symbol)
                if not callable(factory):
                    raise TypeError(f"the factory of {kind} {symbol!r} in PluginConfig({name!r}) "
                                    f"must be callable, got {type(factory).__name__}")

    def source(self, name: str) -> SourceFactory:
        """The factory of a source; a ``LookupError`` naming the defined ones when unknown."""
        return self._lookup("source", self.sources, name)

    def sink(self, name: str) -> SinkFactory:
        """The factory of a sink; a ``LookupError`` naming the defined ones when unknown."""
        return self._lookup("sink", self.sinks, name)

    def function(self, name: str) -> FunctionFactory:
        """The factory of a function; a ``LookupError`` naming the defined ones when unknown."""
        return self._lookup("function", self.functions, name)

    def get(self, plugin_type: str, symbol_name: str) -> Callable[[], object]:
        """The factory of a symbol by its wire type (``source``, ``sink`` or ``func``)."""
        lookups: dict[str, Callable[[str], Callable[[], object]]] = {
            protocol.SOURCE: self.source, protocol.SINK: self.sink, protocol.FUNC: self.function}
        if plugin_type not in lookups:
            raise LookupError(f"unknown plugin type {plugin_type!r}")
        return lookups[plugin_type](symbol_name)

    def _lookup(self, kind: str, table: Mapping[str, F], name: str) -> F:
        try:
            return table[name]
        except KeyError:
            defined = ", ".join(sorted(table)) or "none"
            raise LookupError(f"{kind} {name!r} is not defined in PluginConfig({self.name!r}); "
                              f"defined {kind}s: {defined}") from None

    def symbol_names(self) -> dict[str, object]:
        """The plugin's name and symbol names, as a manifest would list them."""
        return {"name": self.name, "sources": sorted(self.sources), "sinks": sorted(self.sinks),
                "functions": sorted(self.functions)}

    def __repr__(self) -> str:
        return (f"PluginConfig({self.name!r}, sources={sorted(self.sources)}, "
                f"sinks={sorted(self.sinks)}, functions={sorted(self.functions)})")


#: When this environment variable is set, ``start`` prints the plugin's symbols (and, under
#: ``metadata``, what its code says about them: see :mod:`ekuiper_sdk.metadata`) as one JSON
#: line on stdout and exits 0 without opening any socket (used by ``ekuiper-plugin validate``
#: and ``pack``).
LIST_SYMBOLS_ENV = "EKUIPER_SDK_LIST_SYMBOLS"


def start(config: PluginConfig, argv: list[str] | None = None) -> NoReturn:
    """Run the plugin until the host goes away or the process is told to stop.

    ``argv`` defaults to ``sys.argv``; its second element is the host's JSON argument.
    """
    if os.environ.get(LIST_SYMBOLS_ENV):
        listing = dict(config.symbol_names())
        try:
            from ..metadata import symbol_metadata

            listing["metadata"] = symbol_metadata(config)
        except Exception as exc:  # noqa: BLE001 - the symbols are still listed
            listing["metadata_error"] = f"{type(exc).__name__}: {exc}"
        sys.stdout.write(json.dumps(listing, default=str) + "\n")
        sys.stdout.flush()
        raise SystemExit(0)
    argv = sys.argv if argv is None else argv
    # The one place the part is decided and acted on; supervision loads only where it is
    # used: one process, the default, does not pay its memory.
    decision = decide(config, argv)
    if decision.part is Part.WORKER:
        from .supervision.worker import serve_as_worker

        serve_as_worker(config, argv, decision.worker_url)
    if decision.part is Part.SUPERVISOR:
        from .supervision.supervisor import Supervisor

        Supervisor(config, argv, list(decision.command)).serve_forever()
    from .control import PluginRuntime

    PluginRuntime(config, argv).serve_forever()
