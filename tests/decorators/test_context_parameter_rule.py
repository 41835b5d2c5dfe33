"""One rule says which parameters of a decorated function are SQL arguments: a first
parameter named ``ctx`` or ``context``, or annotated ``Context``, is the call's context.
Validate, the call itself and the UI metadata all follow it (a real plugin process)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers import import_plugin

from ekuiper_sdk.metadata import symbol_metadata

PLUGIN = textwrap.dedent('''
    from ekuiper_sdk import Context, Plugin

    app = Plugin("NAME")

    @app.function("by_ctx")
    def by_ctx(ctx, s):
        return [type(ctx).__name__, s]

    @app.function("by_context")
    def by_context(context, s):
        return [type(context).__name__, s]

    @app.function("by_annotation")
    def by_annotation(c: Context, s: str) -> list:
        return [type(c).__name__, s]

    @app.function("by_async")
    async def by_async(context, s):
        return [type(context).__name__, s]

    @app.function("no_context")
    def no_context(s, t="x"):
        return [s, t]

    if __name__ == "__main__":
        app.run()
''')

WITH_CONTEXT = ["by_ctx", "by_context", "by_annotation", "by_async"]


@pytest.fixture
def plugin(tmp_path: Path, plugin_host_factory: Callable[..., Any],
           unique_name: Callable[[str], str]) -> tuple[Any, Path]:
    name = unique_name("ctxrule")
    main = tmp_path / "main.py"
    main.write_text(PLUGIN.replace("NAME", name))
    return plugin_host_factory(name, main, python=sys.executable), main


@pytest.mark.parametrize("symbol", WITH_CONTEXT)
def test_the_context_is_no_sql_argument_for_validate_the_call_and_the_metadata(
        plugin: tuple[Any, Path], symbol: str) -> None:
    host, main = plugin
    fn = host.function(symbol)
    assert fn.validate(["a"]).state
    reply = fn.validate(["a", "b"])
    assert not reply.state and "takes 1 argument, got 2" in str(reply.result)
    kind, value = fn.call("a")
    assert value == "a" and kind.endswith("Context"), kind
    app = import_plugin(main).app  # type: ignore[attr-defined]
    listed = symbol_metadata(app.config())["functions"][symbol]
    assert [a["name"] for a in listed["args"]] == ["s"]


def test_a_function_without_a_context_takes_all_its_parameters(
        plugin: tuple[Any, Path]) -> None:
    host, main = plugin
    fn = host.function("no_context")
    assert fn.call("a") == ["a", "x"]
    assert not fn.validate([]).state
    app = import_plugin(main).app  # type: ignore[attr-defined]
    listed = symbol_metadata(app.config())["functions"]["no_context"]
    assert [(a["name"], a["optional"]) for a in listed["args"]] == [("s", False), ("t", True)]
