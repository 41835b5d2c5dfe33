"""A private real eKuiper for the tools' tests, when ``--kuiperd PATH`` or
``EKUIPER_KUIPERD`` names a kuiperd binary (otherwise the tests that need it skip).

Its ``portable.pythonBin`` is a fresh virtual environment with pip and nothing else, as a
user's bare Python would be."""

from __future__ import annotations

import os
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.kuiperd import PrivateKuiperd


@pytest.fixture(scope="module")
def private_kuiperd(pytestconfig: pytest.Config,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateKuiperd]:
    binary = pytestconfig.getoption("--kuiperd") or os.environ.get("EKUIPER_KUIPERD")
    if not binary:
        pytest.skip("no kuiperd binary: pass --kuiperd PATH or set EKUIPER_KUIPERD")
    env_dir = tmp_path_factory.mktemp("server-python")
    venv.EnvBuilder(with_pip=True).create(env_dir)
    with PrivateKuiperd(Path(binary), python=str(env_dir / "bin" / "python"),
                        log=lambda _line: None) as server:
        yield server
