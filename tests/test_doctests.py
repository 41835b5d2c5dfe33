"""The examples in every module's docstrings are run, so they stay true."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import ekuiper_sdk

MODULES = sorted(info.name for info in pkgutil.walk_packages(ekuiper_sdk.__path__,
                                                             "ekuiper_sdk.")
                 if not info.name.endswith("__main__"))
#: Modules whose examples are part of their specification: each must have some.
SPECIFIED = {"ekuiper_sdk.runtime.protocol", "ekuiper_sdk.runtime.codec",
             "ekuiper_sdk.tools.manifest", "ekuiper_sdk.app", "ekuiper_sdk.state",
             "ekuiper_sdk.decorators.adapters", "ekuiper_sdk.decorators.event_loops",
             "ekuiper_sdk.decorators.records", "ekuiper_sdk.decorators.signatures",
             "ekuiper_sdk.runtime.process", "ekuiper_sdk.runtime.hooks",
             "ekuiper_sdk.typed_config"}


def test_every_specified_module_exists() -> None:
    assert SPECIFIED <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0
    if name in SPECIFIED:
        assert result.attempted > 0
