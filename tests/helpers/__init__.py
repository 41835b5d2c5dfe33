"""What the tests share: paths, test-only stand-ins for eKuiper's installer and REST API,
and helpers to make plugin folders."""

from __future__ import annotations

from pathlib import Path

#: The repository, its test folder, the test plugins and the examples.
TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
PLUGINS = TESTS / "plugins"
EXAMPLES = REPO / "example"
