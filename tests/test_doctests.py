"""The examples in the sans-IO modules' docstrings are run, so they stay true."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from ekuiper_sdk import protocol, runtime


@pytest.mark.parametrize("module", [protocol, runtime], ids=lambda m: m.__name__)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
