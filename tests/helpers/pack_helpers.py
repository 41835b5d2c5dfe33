"""Helpers shared by the packaging, REST and CLI tests: fresh plugin projects, PyPI checks."""

from __future__ import annotations

import functools
import importlib
import json
import urllib.request
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

from ekuiper_sdk.tools.templates import init_project


def unique_name(prefix: str = "t") -> str:
    """A plugin name no other test (or concurrent run) uses: socket paths are global."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def new_plugin(tmp_path: Path, name: str | None = None) -> Path:
    """A fresh ``init`` project in ``tmp_path/<name>``."""
    name = name or unique_name()
    return init_project(name, tmp_path / name)


def zip_folder(folder: Path, target: Path, top: str = "") -> Path:
    """``folder``'s files in a zip at ``target``, at its root or under the folder ``top``
    (a layout eKuiper refuses), without the packer's checks; ``target``."""
    prefix = f"{top}/" if top else ""
    with zipfile.ZipFile(target, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(folder).as_posix())
    return target


def manifest_of(plugin_dir: Path) -> dict[str, Any]:
    path = next(p for p in plugin_dir.glob("*.json"))
    return dict(json.loads(path.read_text()))


def write_manifest(plugin_dir: Path, data: dict[str, Any]) -> None:
    path = next(p for p in plugin_dir.glob("*.json"))
    path.write_text(json.dumps(data, indent=2))


@functools.lru_cache(maxsize=1)
def pypi_problem() -> str | None:
    """Why PyPI cannot be used from here, or None when it answers."""
    try:
        with urllib.request.urlopen("https://pypi.org/simple/six/", timeout=8) as resp:
            resp.read(64)
    except OSError as exc:
        return f"PyPI is unreachable ({exc})"
    return None


def require_pypi() -> None:
    problem = pypi_problem()
    if problem:
        pytest.skip(problem)


def builtin_host() -> Any:
    """``ekuiper_sdk.testing``, or a skip while it is not part of this installation."""
    try:
        return importlib.import_module("ekuiper_sdk.testing")
    except ImportError:
        pytest.skip("ekuiper_sdk.testing not merged yet")
