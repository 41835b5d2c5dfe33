"""Tests of the h26demo plugin: each symbol alone, then the plugin under ekuiper_sdk.testing."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType

import pytest

PLUGIN_DIR = Path(__file__).resolve().parents[1]


def load_main() -> ModuleType:
    # A unique module name, so that several plugins can be tested in one session.
    spec = importlib.util.spec_from_file_location("h26demo_main", PLUGIN_DIR / "main.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


def test_function_upper_cases_its_argument() -> None:
    main = load_main()
    function = main.Upper()
    assert function.validate(["text"]) == ""
    assert function.validate([]) != ""
    assert function.exec(["abc"], None) == "ABC"


def test_config_names_the_declared_symbols() -> None:
    described = load_main().CONFIG.symbol_names()
    assert described == {"name": "h26demo", "sources": ["h26demo_counter"], "sinks": ["h26demo_print"],
                         "functions": ["h26demo_upper"]}


def test_plugin_runs_under_the_builtin_host() -> None:
    testing = pytest.importorskip("ekuiper_sdk.testing")
    out = io.StringIO()
    testing.run_pipeline(PLUGIN_DIR, source="h26demo_counter", function="h26demo_upper", sink="h26demo_print",
                         count=3, out=out, timeout=30.0)
    assert out.getvalue().strip(), "nothing flowed from the source to the sink"
