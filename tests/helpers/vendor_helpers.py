"""Helpers of the vendoring tests: wheels for this machine, a clean pip environment, a bare
virtual environment standing for eKuiper's Python."""

from __future__ import annotations

import os
import platform
import sys
import venv
from pathlib import Path

from ekuiper_sdk.tools import vendor as vendoring
from ekuiper_sdk.tools.vendor import VendorOptions

PY = f"{sys.version_info[0]}.{sys.version_info[1]}"


def local_options(**kw: object) -> VendorOptions:
    glibc = platform.libc_ver()[1] or "2.17"
    defaults: dict[str, object] = {"python_version": PY, "platforms": (vendoring.host_platform(),),
                                       "glibc": glibc}
    defaults.update(kw)
    return VendorOptions(**defaults)  # type: ignore[arg-type]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment with every pip setting removed, so nothing but the zip's wheels and
    the command line can feed pip (this machine points PIP_FIND_LINKS at a wheel folder)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def bare_venv_with_borrowed_pip(tmp_path: Path) -> tuple[Path, Path]:
    """A new venv without pip, plus a folder lending it this interpreter's pip through
    PYTHONPATH: seconds faster than ensurepip, and pip still installs into the new venv."""
    import pip

    env_dir = tmp_path / "bare-venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    lend = tmp_path / "lend"
    lend.mkdir()
    (lend / "pip").symlink_to(Path(pip.__file__).parent)
    return env_dir / "bin" / "python", lend
