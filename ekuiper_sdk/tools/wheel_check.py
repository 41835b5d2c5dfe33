"""Which system libraries the native modules of vendored wheels need on the device.

A manylinux or musllinux wheel may load, besides what it bundles (``<pkg>.libs/``), only the
libraries its platform policy lists; auditwheel's policy files are that list. Some of them
are not part of the C library, and a minimal system lacks them: pynng 0.9's aarch64 wheel
needs ``libatomic.so.1``, which the policy allows and a minimal Debian (debootstrap's
minbase) does not have. So every native module's ``DT_NEEDED`` entries are read (with
pyelftools) and sorted into what the C library provides, what the policy allows but the
device must have installed, and what even the policy does not allow.

Both libraries come with ``ekuiper-sdk[tools]``; without them the check is skipped with a
note, and install.sh still fails at once, naming the library, on a device that lacks one.

Example::

    for need in system_needs(Path("wheels/pynng-0.9.0-cp312-cp312-manylinux_2_28_aarch64.whl")):
        print(need)
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

#: Parts of the C library itself (glibc or musl): present wherever Python runs.
_C_LIBRARY = re.compile(r"^(libc|libm|libdl|librt|libpthread|libutil|libnsl|libanl|libresolv|"
                        r"libcrypt)\.so(\.\d+)*$|^ld-linux[-\w.]*\.so\.\d+$|^libc\.musl-\w+\.so\.1$")
#: The system package that brings a library, on Debian (and Raspberry Pi OS) and on Alpine.
SYSTEM_PACKAGES = {
    "libatomic.so.1": ("libatomic1", "libatomic"),
    "libstdc++.so.6": ("libstdc++6", "libstdc++"),
    "libgcc_s.so.1": ("libgcc-s1", "libgcc"),
    "libz.so.1": ("zlib1g", "zlib"),
    # cffi built from source (armv7) links the system's libffi instead of bundling it.
    "libffi.so.8": ("libffi8", "libffi"),
}
_TAG_RE = re.compile(r"^(many|musl)linux_(\d+)_(\d+)_(\w+)$")
_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


class CheckUnavailable(Exception):
    """pyelftools or auditwheel's policy files are not installed."""


@dataclass(frozen=True)
class Need:
    """One library a wheel's native module loads from the system."""

    wheel: str
    module: str
    library: str
    #: ``system``: allowed by the policy but not in the C library; ``outside``: not even
    #: allowed by the policy of the wheel's platform tag.
    kind: str

    def __str__(self) -> str:
        debian, alpine = SYSTEM_PACKAGES.get(self.library, ("", ""))
        where = (f" (Debian, Raspberry Pi OS: apt-get install {debian}; Alpine: apk add "
                 f"{alpine})" if debian else "")
        if self.kind == "outside":
            return (f"{self.wheel}: {self.module} needs {self.library}, which the wheel does "
                    f"not bundle and its platform's policy does not promise; the device must "
                    f"have it{where}")
        return (f"{self.wheel}: {self.module} needs {self.library}, a system library beyond "
                f"the C library that a minimal system may lack; the device must have it{where}")


def _policy_files() -> dict[str, list[dict[str, Any]]]:
    spec = importlib.util.find_spec("auditwheel")
    if spec is None or not spec.submodule_search_locations:
        raise CheckUnavailable("auditwheel is not installed")
    root = Path(list(spec.submodule_search_locations)[0]) / "policy"
    out = {}
    for flavour in ("manylinux", "musllinux"):
        path = root / f"{flavour}-policy.json"
        if path.is_file():
            out[flavour] = json.loads(path.read_text(encoding="utf-8"))
    if "manylinux" not in out:
        raise CheckUnavailable(f"auditwheel's policy files are not in {root}")
    return out


def allowed_libraries(platform_tag: str) -> set[str] | None:
    """The libraries the policy of ``platform_tag`` lets a wheel load from the system, or
    ``None`` for a tag that has no policy (``any``, ``linux_armv7l``...).

    >>> "libatomic.so.1" in allowed_libraries("manylinux_2_28_aarch64")  # doctest: +SKIP
    True
    """
    tag = platform_tag
    for legacy, (major, minor) in _LEGACY.items():
        if tag.startswith(legacy + "_"):
            tag = f"manylinux_{major}_{minor}_{tag[len(legacy) + 1:]}"
    match = _TAG_RE.match(tag)
    if match is None:
        return None
    flavour = match.group(1) + "linux"
    name = f"{flavour}_{match.group(2)}_{match.group(3)}"
    for policy in _policy_files().get(flavour, []):
        if policy.get("name") == name or name in (policy.get("aliases") or []):
            whitelist = policy.get("lib_whitelist") or []
            if isinstance(whitelist, dict):   # per architecture in some versions
                whitelist = whitelist.get(match.group(4), [])
            return set(whitelist)
    return None


def _needed(data: bytes) -> list[str]:
    try:
        elffile = importlib.import_module("elftools.elf.elffile")
    except ImportError:
        raise CheckUnavailable("pyelftools is not installed") from None
    elf = elffile.ELFFile(io.BytesIO(data))
    dynamic = elf.get_section_by_name(".dynamic")
    if dynamic is None:
        return []
    return [str(tag.needed) for tag in dynamic.iter_tags() if tag.entry.d_tag == "DT_NEEDED"]


def _platform_tags(wheel_name: str) -> list[str]:
    """``pynng-0.9.0-cp312-cp312-manylinux_2_26_x86_64.manylinux_2_28_x86_64.whl`` → both."""
    return wheel_name[:-len(".whl")].split("-")[-1].split(".")


def system_needs(wheel: Path) -> list[Need]:
    """The system libraries the native modules of ``wheel`` load, beyond the C library.

    Raises ``CheckUnavailable`` without pyelftools or auditwheel.
    """
    tags = _platform_tags(wheel.name)
    policies = [allowed_libraries(t) for t in tags]
    # The wheel promises the loosest of its tags' policies: it installs under any of them.
    allowed = set().union(*(p for p in policies if p is not None)) if any(
        p is not None for p in policies) else None
    out: list[Need] = []
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        bundled = {PurePosixPath(n).name for n in names}
        for name in names:
            if not re.search(r"\.so(\.\d+)*$", name):
                continue
            data = zf.read(name)
            if not data.startswith(b"\x7fELF"):
                continue
            for library in _needed(data):
                if library in bundled or _C_LIBRARY.match(library):
                    continue
                kind = "outside" if allowed is not None and library not in allowed else "system"
                out.append(Need(wheel.name, name, library, kind))
    return out


def check_wheels(wheels: Iterable[Path]) -> list[Need]:
    """:func:`system_needs` of every wheel, one entry per wheel and library."""
    seen: dict[tuple[str, str], Need] = {}
    for wheel in wheels:
        for need in system_needs(wheel):
            seen.setdefault((need.wheel, need.library), need)
    return list(seen.values())


def notes(wheels: Sequence[Path]) -> list[str]:
    """The lines ``pack --vendor`` prints about the wheels' system libraries.

    >>> notes([])
    []
    """
    if not wheels:
        return []
    try:
        return [str(need) for need in check_wheels(wheels)]
    except CheckUnavailable as exc:
        return [f"the wheels' system libraries are not checked ({exc}): install "
                "ekuiper-sdk[tools]"]
