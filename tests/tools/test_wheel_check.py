"""``wheel_check``: the system libraries of real wheels' native modules, read from their ELF
files against auditwheel's policies. The PyPI wheels are downloaded once into the user's
cache (the tests skip when PyPI is unreachable)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from helpers.pack_helpers import require_pypi
from helpers.vendor_helpers import wheel_with_native_module

from ekuiper_sdk.tools import wheel_check

CACHE = Path.home() / ".cache" / "ekuiper-sdk" / "test-wheels"


def pypi_wheel(requirement: str, platform: str, python: str = "3.12") -> Path:
    """One binary wheel of ``requirement`` for ``platform``, from PyPI (cached)."""
    require_pypi()
    dest = CACHE / platform
    name = requirement.split("=")[0]
    found = sorted(dest.glob(f"{name}-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary=:all:", "--python-version", python, "--platform",
                        platform, "--dest", str(dest), requirement], check=True, timeout=120)
        found = sorted(dest.glob(f"{name}-*.whl"))
    assert found, f"pip downloaded no wheel of {requirement} for {platform}"
    return found[-1]


def test_pynng_aarch64_needs_libatomic_which_the_policy_allows() -> None:
    """The wheel that fails on a minimal Debian arm64: libatomic is allowed by its manylinux
    policy, so only the 'beyond the C library' reading names it."""
    wheel = pypi_wheel("pynng==0.9.0", "manylinux_2_28_aarch64")
    [need] = wheel_check.system_needs(wheel)
    assert (need.module, need.library, need.kind) == ("pynng/_nng.abi3.so", "libatomic.so.1",
                                                      "system")
    assert "apt-get install libatomic1" in str(need) and "apk add libatomic" in str(need)


def test_pynng_musllinux_and_x86_64_need_only_the_c_library() -> None:
    for platform in ("musllinux_1_2_aarch64", "manylinux_2_28_x86_64"):
        wheel = pypi_wheel("pynng==0.9.0", platform)
        assert wheel_check.system_needs(wheel) == [], platform


def test_bundled_libraries_are_not_needs(tmp_path: Path) -> None:
    """A library the wheel ships in <package>.libs/, as auditwheel bundles one."""
    import platform

    tag = f"py3-none-manylinux_2_17_{platform.machine()}"
    wheel = wheel_with_native_module(tmp_path, "h24gone", tag, bundle=True)
    assert "h24native.libs/libh24gone.so.1" in zipfile.ZipFile(wheel).namelist()
    assert wheel_check.system_needs(wheel) == []


def test_a_library_outside_the_policy_is_named(tmp_path: Path) -> None:
    import platform

    arch = platform.machine()
    wheel = wheel_with_native_module(tmp_path, "h24gone", f"py3-none-manylinux_2_17_{arch}")
    [need] = wheel_check.system_needs(wheel)
    assert (need.library, need.kind) == ("libh24gone.so.1", "outside")
    assert "its platform's policy does not promise" in str(need)


def test_the_policy_of_each_tag_is_auditwheels() -> None:
    allowed = wheel_check.allowed_libraries("manylinux2014_aarch64")
    assert allowed is not None and "libc.so.6" in allowed and "libh24gone.so.1" not in allowed
    assert wheel_check.allowed_libraries("musllinux_1_2_x86_64") == {"libc.so", "libz.so.1"}
    assert wheel_check.allowed_libraries("linux_armv7l") is None


def test_without_pyelftools_the_note_says_how_to_get_the_check(tmp_path: Path) -> None:
    wheel = wheel_with_native_module(tmp_path, "h24gone", "py3-none-any")
    code = ("import sys; sys.modules['elftools'] = None; from pathlib import Path; "
            "from ekuiper_sdk.tools.wheel_check import notes; "
            f"print(notes([Path({str(wheel)!r})]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "not checked (pyelftools is not installed): install ekuiper-sdk[tools]" in out
