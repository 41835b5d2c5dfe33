"""What the tests share: paths, test-only stand-ins for eKuiper's installer and REST API,
and helpers to make plugin folders."""

from __future__ import annotations

from pathlib import Path

#: The repository, its test folder, the test plugins and the examples.
TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
PLUGINS = TESTS / "plugins"
EXAMPLES = REPO / "example"


def import_plugin(main: Path) -> object:
    """The module of a plugin's main script, imported under a name of its own (so that the
    dataclasses it defines find their module), without running its ``__main__`` part."""
    import importlib.util
    import sys

    name = f"plugin_under_test_{abs(hash(str(main)))}"
    spec = importlib.util.spec_from_file_location(name, main)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
