"""Helpers of the vendoring tests: wheels for this machine, a clean pip environment, a bare
virtual environment standing for eKuiper's Python."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

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


def wheel_with_native_module(folder: Path, needs: str, tag: str = "py3-none-any",
                             bundle: bool = False) -> Path:
    """A wheel of ``h24native`` whose extension module is linked against ``lib<needs>.so.1``,
    a library built for the occasion and deleted again, as a system that lacks it would be.
    ``tag`` is the wheel's tag (``py3-none-any`` installs anywhere); with ``bundle`` the
    library is shipped in ``h24native.libs/``, as auditwheel bundles one."""
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("needs a C compiler to build a native module")
    build = folder / "build"
    build.mkdir()
    (build / "gone.c").write_text("int gone(void) { return 1; }\n")
    (build / "mod.c").write_text("int gone(void);\nint h24native_value(void) { return gone(); }\n")
    lib = build / f"lib{needs}.so.1"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), f"-Wl,-soname,{lib.name}",
                    str(build / "gone.c")], check=True)
    (build / f"lib{needs}.so").symlink_to(lib.name)
    module = build / "_mod.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(module), str(build / "mod.c"),
                    f"-L{build}", f"-l{needs}"], check=True)
    wheel = folder / f"h24native-1.0-{tag}.whl"
    files = {"h24native/__init__.py": b"", "h24native/_mod.so": module.read_bytes(),
             "h24native-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: h24native\n"
                                                 b"Version: 1.0\n",
             "h24native-1.0.dist-info/WHEEL": ("Wheel-Version: 1.0\nRoot-Is-Purelib: false\n"
                                               f"Tag: {tag}\n").encode()}
    if bundle:
        files[f"h24native.libs/{lib.name}"] = lib.read_bytes()
    record = "".join(f"{name},,\n" for name in files) + "h24native-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr("h24native-1.0.dist-info/RECORD", record)
    shutil.rmtree(build)   # the library is gone: only the module's need for it stays
    return wheel
