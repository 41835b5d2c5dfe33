"""``Plugin`` and its decorators: what they register, and the errors a user meets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ekuiper_sdk import Context, Function, Plugin, PluginConfig, Sink, Source
from ekuiper_sdk.decorators import adapters


def test_decorators_register_adapters_and_return_the_callable_unchanged() -> None:
    app = Plugin("demo")

    @app.source("ticks")
    async def ticks(ctx: Context, datasource: str, conf: dict[str, Any]) -> AsyncIterator[Any]:
        yield {"n": 1}

    @app.sink("print")
    def print_sink(ctx: Context, record: Any) -> None: ...

    @app.function("revert")
    def revert(s: str) -> str:
        return s[::-1]

    assert revert("abc") == "cba"  # still a plain function
    config = app.config()
    assert isinstance(config, PluginConfig)
    assert config.symbol_names() == {"name": "demo", "sources": ["ticks"], "sinks": ["print"],
                                 "functions": ["revert"]}
    assert isinstance(config.source("ticks")(), adapters.SourceAdapter)
    assert isinstance(config.sink("print")(), adapters.SinkAdapter)
    function = config.function("revert")()
    assert isinstance(function, adapters.FunctionAdapter)
    assert function.validate(["a", "b"]) == "revert takes 1 argument, got 2"


def test_each_instance_gets_a_new_adapter() -> None:
    app = Plugin("demo")

    @app.source()
    def ticks(ctx: Context, datasource: str, conf: dict[str, Any]) -> Iterator[Any]:
        yield {}

    factory = app.config().source("ticks")  # the name defaults to the Python name
    assert factory() is not factory()


def test_classes_of_the_official_api_are_registered_as_they_are() -> None:
    app = Plugin("demo")

    @app.source("s")
    class S(Source):
        pass

    @app.sink("k")
    class K(Sink):
        pass

    @app.sink("decoded", records="each")
    class D(Sink):
        pass

    @app.function("f")
    class F(Function):
        pass

    config = app.config()
    assert config.source("s") is S and config.sink("k") is K and config.function("f") is F
    assert isinstance(config.sink("decoded")(), adapters.SinkAdapter)


def test_a_plain_class_sink_defaults_to_records() -> None:
    app = Plugin("demo")

    @app.sink("store")
    class Store:
        def collect(self, ctx: Context, record: Any) -> None: ...

    sink = app.config().sink("store")()
    assert isinstance(sink, adapters.SinkAdapter) and sink.mode == "each"


def test_mistakes_are_refused_when_the_plugin_is_defined() -> None:
    app = Plugin("demo")

    @app.function("f")
    def f(x: Any) -> Any: ...

    with pytest.raises(ValueError, match="function 'f' is defined twice in Plugin"):
        app.function("f")(f)
    with pytest.raises(TypeError, match=r"@app.sink needs parentheses"):
        app.sink(print)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="use 'each', 'list' or 'bytes'"):
        app.sink("k", records="single")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"source 's' must take \(ctx, datasource, conf\)"):
        app.source("s")(lambda ctx: None)
    with pytest.raises(TypeError, match="sink 'k': Nothing has no collect"):
        @app.sink("k")
        class Nothing:
            pass
    with pytest.raises(TypeError, match="keyword-only"):
        @app.function("g")
        def g(x: Any, *, unit: str) -> Any: ...
    with pytest.raises(ValueError, match="cannot be used in a socket path"):
        app.function("a/b")(f)
    with pytest.raises(TypeError, match="decorates a function or a Source subclass, not int"):
        app.source("n")(3)
    with pytest.raises(ValueError, match="cannot be used in a socket path"):
        Plugin("")


def test_run_without_symbols_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="has no symbols; register some"):
        Plugin("empty").run()


def test_run_lists_the_symbols_when_asked(tmp_path: Path) -> None:
    script = tmp_path / "main.py"
    script.write_text(
        "from ekuiper_sdk import Plugin\n"
        "app = Plugin('listed')\n"
        "@app.function('twice')\n"
        "def twice(x):\n"
        "    return 2 * x\n"
        "app.run()\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            env={**os.environ, "EKUIPER_SDK_LIST_SYMBOLS": "1"}, timeout=30)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert listed.pop("metadata")["functions"]["twice"]["args"][0]["name"] == "x"
    assert listed == {"name": "listed", "sources": [], "sinks": [], "functions": ["twice"]}


def test_run_sets_the_state_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ekuiper_sdk import plugin, state

    seen: list[str] = []
    monkeypatch.delenv(state.STATE_DIR_ENV, raising=False)
    monkeypatch.setattr(state, "_default_dir", None)
    monkeypatch.setattr(plugin, "start", lambda config, argv=None: seen.append(
        state.state_dir()))
    app = Plugin("demo", state_dir=tmp_path / "st")

    @app.function("f")
    def f(x: Any) -> Any: ...

    app.run()
    assert seen == [str(tmp_path / "st")]
