"""The files ``ekuiper-plugin init NAME`` writes: a plugin that validates, packs and runs at once.

Example::

    from ekuiper_sdk.tools.templates import init_project
    init_project("demo", "demo")      # demo/demo.json, demo/main.py, demo/sources/..., ...
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from string import Template

from ..errors import PackagingError, Problem
from .manifest import NAME_RE

MAIN_PY = Template('''\
"""The $name plugin for eKuiper: a source, a function and a sink.

eKuiper starts this file as `python -u main.py '{"sendTimeout": 1000}'` from the plugin
folder. `ekuiper-plugin run .` runs it under a built-in host and shows what flows.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, List

from ekuiper_sdk import Context, Function, PluginConfig, Sink, Source, plugin


@dataclass
class CounterConf:
    interval: int = field(default=1000, metadata={"hint": "Milliseconds between two tuples"})


class Counter(Source):
    """Emits {"n": 1, "text": "hello 1"}, {"n": 2, ...} every `interval` milliseconds."""

    # configure receives its configuration as a CounterConf, checked and converted; `pack`
    # describes it in sources/$source.json for eKuiper's UI.
    config_type = CounterConf

    def __init__(self) -> None:
        self.interval = 1.0
        self.prefix = "hello"
        self.stopped = threading.Event()

    def configure(self, datasource: str, conf: CounterConf) -> None:
        # conf is the section of sources/$source.yaml the stream picks (CONF_KEY), or default.
        self.interval = conf.interval / 1000.0
        self.prefix = datasource or "hello"

    def open(self, ctx: Context) -> None:
        n = 0
        while not self.stopped.is_set():
            n += 1
            ctx.emit({"n": n, "text": f"{self.prefix} {n}"}, None)
            self.stopped.wait(self.interval)

    def close(self, ctx: Context) -> None:
        self.stopped.set()


class Upper(Function):
    """$function(text): the text in upper case."""

    def validate(self, args: List[Any]) -> str:
        return "" if len(args) == 1 else "$function takes exactly one argument"

    def exec(self, args: List[Any], ctx: Context) -> Any:
        return str(args[0]).upper()

    def is_aggregate(self) -> bool:
        return False


@dataclass
class PrinterConf:
    prefix: str = field(default="", metadata={"hint": "Text written before each frame"})


class Printer(Sink):
    """Logs every frame the rule sends (JSON bytes by default)."""

    config_type = PrinterConf

    def __init__(self) -> None:
        self.prefix = ""

    def configure(self, conf: PrinterConf) -> None:
        # From the rule's action, e.g. {"$sink": {"prefix": "> "}}.
        self.prefix = conf.prefix

    def collect(self, ctx: Context, data: Any) -> None:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        ctx.get_logger().info("%s%s", self.prefix, text)


CONFIG = PluginConfig("$name", {"$source": Counter}, {"$sink": Printer}, {"$function": Upper})

if __name__ == "__main__":
    plugin.start(CONFIG)
''')

TEST_PY = Template('''\
"""Tests of the $name plugin: each symbol alone, then the plugin under ekuiper_sdk.testing."""

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
    spec = importlib.util.spec_from_file_location("${ident}_main", PLUGIN_DIR / "main.py")
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
    assert described == {"name": "$name", "sources": ["$source"], "sinks": ["$sink"],
                         "functions": ["$function"]}


def test_plugin_runs_under_the_builtin_host() -> None:
    testing = pytest.importorskip("ekuiper_sdk.testing")
    out = io.StringIO()
    testing.run_pipeline(PLUGIN_DIR, source="$source", function="$function", sink="$sink",
                         count=3, out=out, timeout=30.0)
    assert out.getvalue().strip(), "nothing flowed from the source to the sink"
''')

README_MD = Template('''\
# $name

An eKuiper portable plugin with a source `$source`, a function `$function` and a sink
`$sink`.

    ekuiper-plugin validate .        # manifest, files and symbols
    ekuiper-plugin run .             # run it under the built-in host and watch what flows
    python -m pytest tests           # the plugin's tests
    ekuiper-plugin pack . --vendor   # $name.zip, with the wheels for lfedge/ekuiper:*-slim-python
    ekuiper-plugin install $name.zip # into the eKuiper at http://127.0.0.1:9081

In eKuiper:

    CREATE STREAM ${ident}_stream () WITH (TYPE="$source", FORMAT="json")
    SELECT $function(text) AS text FROM ${ident}_stream      -- rule action: {"$sink": {}}
''')

SOURCE_YAML = Template('''\
# Default configuration of the $source source. A stream picks a section with CONF_KEY;
# without one it gets "default".
default:
  interval: 1000
''')

REQUIREMENTS = '''\
# The plugin's dependencies, one requirement a line (no options).
# `ekuiper-plugin pack --vendor` ships their wheels and ekuiper-sdk's in the zip.
'''


def symbol_names(name: str) -> dict[str, str]:
    """The symbol names ``init`` gives a plugin: unique per plugin, since eKuiper keeps one
    namespace of sources, sinks and functions for all plugins.

    >>> symbol_names("my-plugin")["function"]
    'my_plugin_upper'
    """
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not re.match(r"^[A-Za-z_]", ident):
        ident = "p_" + ident
    return {"name": name, "ident": ident, "source": f"{ident}_counter",
            "sink": f"{ident}_print", "function": f"{ident}_upper"}


def render(name: str) -> dict[str, tuple[str, int]]:
    """Every file of a new project: ``{relative path: (text, mode)}``.

    >>> sorted(render("demo"))[:3]
    ['README.md', 'demo.json', 'main.py']
    """
    if not NAME_RE.match(name):
        raise PackagingError([Problem(name, "is not a usable plugin name",
                                      "use letters, digits, '_' or '-' (it names files, "
                                      "sockets and REST URLs)")])
    v = symbol_names(name)
    manifest = {"version": "0.1.0", "language": "python", "executable": "main.py",
                "sources": [v["source"]], "sinks": [v["sink"]], "functions": [v["function"]]}
    def dump(data: object) -> str:
        return json.dumps(data, indent=2) + "\n"

    return {
        f"{name}.json": (dump(manifest), 0o644),
        "main.py": (MAIN_PY.substitute(v), 0o755),
        f"sources/{v['source']}.yaml": (SOURCE_YAML.substitute(v), 0o644),
        "requirements.txt": (REQUIREMENTS, 0o644),
        "tests/test_plugin.py": (TEST_PY.substitute(v), 0o644),
        "README.md": (README_MD.substitute(v), 0o644),
    }


def init_project(name: str, directory: str | Path | None = None, *,
                 force: bool = False) -> Path:
    """Write a new plugin project into ``directory`` (default ``./NAME``) and return it.

    Refuses to overwrite an existing file unless ``force``.

    >>> init_project("demo", "/tmp/demo-plugin", force=True)      # doctest: +SKIP
    PosixPath('/tmp/demo-plugin')
    """
    files = render(name)
    root = Path(directory) if directory is not None else Path(name)
    existing = [rel for rel in files if (root / rel).exists()]
    if existing and not force:
        raise PackagingError([Problem(str(root / existing[0]), "already exists",
                                      "choose another folder or pass --force to overwrite")])
    for rel, (text, mode) in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(mode)
    return root
