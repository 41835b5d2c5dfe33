"""One rule decides a symbol's configuration type, whatever way the symbol is registered:
``config=`` given to the decorator, else the class's ``config_type``. The runtime's
``configure``, the adapters and the UI metadata all follow it (a real plugin process)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers import import_plugin

from ekuiper_sdk.metadata import symbol_metadata

PLUGIN = textwrap.dedent('''
    from dataclasses import dataclass
    import os
    import sys
    from ekuiper_sdk import Plugin, PluginConfig, Sink, Source, decode_records, plugin

    @dataclass
    class Conf:
        n: int = 0

    def said(symbol, conf):
        # One write: the plugin's stderr (its log) shares the host's pipe.
        print(f"CONFIGURED {symbol} {type(conf).__name__} {getattr(conf, 'n', conf)!r}",
              flush=True)

    class TypedSink(Sink):
        config_type = Conf

        def configure(self, conf):
            said(self.symbol, conf)

        def collect(self, ctx, data):
            pass

    def sink_class(symbol):
        return type(symbol, (TypedSink,), {"symbol": symbol})

    class PlainTyped:
        """Not a Sink subclass: read through its collect method."""
        config_type = Conf
        symbol = "plain_attr"

        def configure(self, conf):
            said(self.symbol, conf)

        def collect(self, ctx, record):
            pass

    class PlainGiven:
        symbol = "plain_given"

        async def configure(self, conf):
            said(self.symbol, conf)

        def collect(self, ctx, record):
            pass

    class TypedSource(Source):
        config_type = Conf

        def configure(self, datasource, conf):
            said("source_class", conf)

        def open(self, ctx):
            pass

    app = Plugin("NAME")
    app.sink("class_bytes")(sink_class("class_bytes"))
    app.sink("class_each", records="each")(sink_class("class_each"))
    app.sink("class_list", records="list")(sink_class("class_list"))
    app.sink("class_given", records="each", config=Conf)(type("class_given", (Sink,), {
        "symbol": "class_given", "configure": lambda self, conf: said(self.symbol, conf),
        "collect": lambda self, ctx, data: None}))
    app.sink("plain_attr")(PlainTyped)
    app.sink("plain_given", config=Conf)(PlainGiven)
    app.source("source_class")(TypedSource)

    @app.source("source_fn", config=Conf)
    def source_fn(ctx, datasource, conf):
        said("source_fn", conf)
        yield {"n": conf.n}

    @app.source("source_async", config=Conf)
    async def source_async(ctx, datasource, conf):
        said("source_async", conf)
        yield {"n": conf.n}

    if __name__ == "__main__" and os.environ.get("CLASS_API"):
        # The class API: a PluginConfig of classes, and one read through decode_records.
        plugin.start(PluginConfig("NAME", {"source_class": TypedSource},
                                  {"cfg_class": sink_class("cfg_class"),
                                   "cfg_records": decode_records(sink_class("cfg_records"))}),
                     sys.argv)
    elif __name__ == "__main__":
        app.run()
''')

SINKS = ["class_bytes", "class_each", "class_list", "class_given", "plain_attr", "plain_given"]
SOURCES = ["source_class", "source_fn", "source_async"]
CLASS_API = ["cfg_class", "cfg_records"]


@pytest.fixture
def typed(tmp_path: Path, plugin_host_factory: Callable[..., Any],
          unique_name: Callable[[str], str]) -> tuple[Any, Path]:
    name = unique_name("conftype")
    main = tmp_path / "main.py"
    main.write_text(PLUGIN.replace("NAME", name))
    return plugin_host_factory(name, main, python=sys.executable), main


@pytest.mark.parametrize("kind, symbol", [("sink", s) for s in SINKS] +
                         [("source", s) for s in SOURCES])
def test_every_style_gets_its_declared_configuration_converted(
        typed: tuple[Any, Path], kind: str, symbol: str,
        unique_name: Callable[[str], str]) -> None:
    host, _ = typed
    start = host.start_sink if kind == "sink" else host.start_source
    start(symbol, unique_name("r"), config={"n": "3"})
    host.wait_output(f"CONFIGURED {symbol} Conf 3")


def test_the_metadata_advertises_the_type_the_runtime_converts_to(
        typed: tuple[Any, Path]) -> None:
    _, main = typed
    app = import_plugin(main).app  # type: ignore[attr-defined]
    listed = symbol_metadata(app.config())
    for kind, symbols in (("sinks", SINKS), ("sources", SOURCES)):
        for symbol in symbols:
            names = [p["name"] for p in listed[kind][symbol]["properties"]]
            assert names == ["n"], (kind, symbol)


@pytest.mark.parametrize("symbol", CLASS_API)
def test_the_class_api_gets_the_declared_configuration_too(
        tmp_path: Path, plugin_host_factory: Callable[..., Any],
        unique_name: Callable[[str], str], symbol: str) -> None:
    name = unique_name("conftype")
    main = tmp_path / "main.py"
    main.write_text(PLUGIN.replace("NAME", name))
    host = plugin_host_factory(name, main, python=sys.executable, env={"CLASS_API": "1"})
    host.start_sink(symbol, unique_name("r"), config={"n": "3"})
    host.wait_output(f"CONFIGURED {symbol} Conf 3")
