"""The package's shape, kept by tests: layers, no import cycles, small modules.

docs/architecture.md describes the layers; these tests read every module's imports (all
of them: at the top, inside functions, and those only for type checking) with ``ast``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import ekuiper_sdk

ROOT = Path(ekuiper_sdk.__file__).parent
MAX_LINES = 650


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The ekuiper_sdk modules a file imports, as dotted names."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("ekuiper_sdk"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("ekuiper_sdk"):
                target = node.module
            else:
                continue
            found.add(target)
            # ``from . import x`` imports the module x when there is one.
            found.update(f"{target}.{a.name}" for a in node.names)
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in files and m != name}
            for name, path in files.items()}


def test_no_import_cycles() -> None:
    edges = graph()
    # Importing a package runs its __init__, which imports its public names; an edge into
    # a package's __init__ from inside that package is not a cycle of modules.
    done: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycles.append(path[path.index(node):] + [node])
            return
        if node in done:
            return
        for nxt in sorted(edges[node]):
            if node.startswith(nxt + ".") or nxt == "ekuiper_sdk":
                continue
            visit(nxt, path + [node])
        done.add(node)

    for name in sorted(edges):
        visit(name, [])
    assert cycles == []


@pytest.mark.parametrize("layer, forbidden", [
    ("ekuiper_sdk.errors", ("ekuiper_sdk.",)),
    ("ekuiper_sdk.runtime", ("ekuiper_sdk.decorators", "ekuiper_sdk.testing",
                             "ekuiper_sdk.tools", "ekuiper_sdk.app")),
    ("ekuiper_sdk.decorators", ("ekuiper_sdk.testing", "ekuiper_sdk.tools")),
    ("ekuiper_sdk.tools.manifest", ("ekuiper_sdk.tools.", "ekuiper_sdk.runtime",
                                    "ekuiper_sdk.testing")),
])
def test_layers_import_only_downwards(layer: str, forbidden: tuple) -> None:  # type: ignore[type-arg]
    for name, targets in graph().items():
        if name == layer or name.startswith(layer + "."):
            bad = sorted(t for t in targets if t.startswith(forbidden) and t != name)
            assert bad == [], f"{name} imports {bad}"


SUPERVISION = "ekuiper_sdk.runtime.supervision"


def imports_inside_functions(path: Path) -> set[str]:
    """The ekuiper_sdk modules a file imports only inside a function body."""
    inner: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom) and sub.level:
                    inner.add(sub.module or "")
    return inner


def test_the_core_runtime_never_imports_supervision() -> None:
    """Supervision is a wing of its own: the rest of the runtime reaches it through the
    hooks it is handed (runtime/hooks.py), never by importing it. ``plugin.start`` alone
    acts on the part ``roles.decide`` picked, importing a supervision module lazily."""
    for name, targets in graph().items():
        if not name.startswith("ekuiper_sdk.runtime") or name.startswith(SUPERVISION):
            continue
        bad = sorted(t for t in targets if t.startswith(SUPERVISION))
        if name == "ekuiper_sdk.runtime.plugin":
            path = ROOT / "runtime" / "plugin.py"
            assert {t.rsplit(".", 1)[-1] for t in bad} <= {"supervision", "worker",
                                                             "supervisor"}
            assert {"supervision.worker", "supervision.supervisor"} <= \
                imports_inside_functions(path), "plugin.py imports supervision lazily only"
            continue
        assert bad == [], f"{name} imports {bad}"


def test_a_plugin_run_as_one_process_loads_no_supervision_module(
        tmp_path: Path, plugin_host_factory: Any, unique_name: Any) -> None:
    """Seen from inside a real plugin process: ``sys.modules`` of a single process holds
    no supervision module, while a supervised worker's does (so the check can fail)."""
    cases: dict[str, Any] = {}
    for supervised in ("0", "1"):
        name = unique_name("solo")
        script = tmp_path / f"main_{supervised}.py"
        script.write_text(textwrap.dedent(f"""
            import sys
            from ekuiper_sdk import Plugin

            app = Plugin({name!r})

            @app.function("{name}_loaded")
            def loaded():
                return sorted(m for m in sys.modules if m.startswith({SUPERVISION!r}))

            if __name__ == "__main__":
                app.run()
        """))
        host = plugin_host_factory(name, script, python=sys.executable,
                                   env={"EKUIPER_SDK_SUPERVISE": supervised})
        cases[supervised] = host.function(f"{name}_loaded").call()
    assert cases["0"] == []
    # The check can tell: a supervised worker has them loaded.
    assert f"{SUPERVISION}.worker" in cases["1"]


#: The command layer of the tools: the command line and the engines of its commands.
COMMANDS = ("ekuiper_sdk.tools.cli", "ekuiper_sdk.tools.run", "ekuiper_sdk.tools.replay_cli",
            "ekuiper_sdk.tools.dev", "ekuiper_sdk.tools.templates")
#: The only edges from the test library up to the command layer, each named with its reason.
TESTING_TO_COMMANDS = {
    ("ekuiper_sdk.testing.__main__", "ekuiper_sdk.tools.cli"):
        "`python -m ekuiper_sdk.testing run` is the documented alias of `ekuiper-plugin run`;"
        " a program, which no module imports",
    ("ekuiper_sdk.testing", "ekuiper_sdk.tools.run.pipeline"):
        "run_pipeline stays importable from testing, where it was before it moved; loaded"
        " lazily, on first use",
}


def test_testing_is_a_library_below_the_commands_that_use_it() -> None:
    """``testing/`` is what a test imports (the host, its handles, RealEkuiper), and may use
    the packaging tools below it; the run engine (``tools/run/``) and the command line use
    the host. Nothing else of the tools imports the test library."""
    edges = graph()
    upward = {(name, t) for name, targets in edges.items()
              if name == "ekuiper_sdk.testing" or name.startswith("ekuiper_sdk.testing.")
              for t in targets if t.startswith(COMMANDS)}
    assert upward == set(TESTING_TO_COMMANDS)
    for name, targets in edges.items():
        if name.startswith("ekuiper_sdk.tools.") and not name.startswith(COMMANDS[:3]):
            bad = sorted(t for t in targets if t.startswith("ekuiper_sdk.testing"))
            assert bad == [], f"{name} imports {bad}"


def test_importing_the_test_library_loads_no_command() -> None:
    code = ("import sys, ekuiper_sdk.testing; "
            "print(sorted(m for m in sys.modules if m.startswith('ekuiper_sdk.tools.run') "
            "or m == 'ekuiper_sdk.tools.cli'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_what_modules_share_is_public() -> None:
    """A name another module imports has no leading underscore: private means one file's."""
    shared = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (
                    node.level or (node.module or "").startswith("ekuiper_sdk")):
                shared += [f"{module_name(path)}: {node.module}.{a.name}" for a in node.names
                           if a.name.startswith("_") and not a.name.startswith("__")]
    assert shared == []


def test_no_module_is_too_long_to_read_in_one_sitting() -> None:
    long = {module_name(p): n for p in ROOT.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


@pytest.mark.parametrize("module", ["ekuiper_sdk.tools.cli", "ekuiper_sdk.tools.pack",
                                    "ekuiper_sdk.tools.rest", "ekuiper_sdk.errors"])
def test_the_tools_load_no_socket_library(module: str) -> None:
    code = (f"import sys, {module}; "
            "print(sorted(m for m in ('pynng', 'msgpack') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_tool_modules_need_only_the_standard_library() -> None:
    # The runtime installs from wheels on the slim image; the tools must not add a
    # dependency by an import (jsonschema and PyYAML are optional, loaded where used).
    if not hasattr(sys, "stdlib_module_names"):
        pytest.skip("needs Python 3.10 to list the standard library")
    # tools/fleet/ too; the run engine (tools/run/) is the exception: it drives the test
    # host, over pynng.
    for path in (p for p in (ROOT / "tools").rglob("*.py") if p.parent.name != "run"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top == "ekuiper_sdk", (path.name, name)


@pytest.mark.parametrize("module, names", [
    ("function", ["Function"]), ("sink", ["Sink"]), ("source", ["Source"]),
    ("runtime.context", ["Context"]), ("runtime.plugin", ["PluginConfig", "start"]),
])
def test_the_official_import_paths_exist(module: str, names: list[str]) -> None:
    """``from ekuiper.<module> import <name>`` becomes ``from ekuiper_sdk.<module> import
    <name>``: the official package's public names, where it defines them."""
    import importlib

    ours = importlib.import_module(f"ekuiper_sdk.{module}")
    for name in names:
        public = ekuiper_sdk.plugin if name == "start" else ekuiper_sdk
        assert getattr(ours, name) is getattr(public, name)
