"""mypy --strict passes on the package and on each example plugin, as users will run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("target", ["ekuiper_sdk", "example/pysam", "example/pysam_async"])
def test_mypy_strict(target: str, tmp_path: Path) -> None:
    # Each example is its own program (its modules import each other by plain name), so
    # each is checked from its own folder, with the package found through MYPYPATH.
    folder = ROOT if target == "ekuiper_sdk" else ROOT / target
    env = dict(os.environ, MYPYPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path), "ekuiper_sdk" if target == "ekuiper_sdk" else "."],
        cwd=folder, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: no issues found" in done.stdout
