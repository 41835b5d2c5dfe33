"""Ship a plugin's Python dependencies inside its zip, as wheels that install with no network.

An edge device often has no compiler and no route to a package index, and eKuiper's
``slim-python`` image (``python:3.12-slim-bookworm``) has no compiler either. So ``pack
--vendor`` resolves, on the packing machine, binary wheels of every requirement for each
target interpreter and platform (``pip download --only-binary=:all:``), adds a wheel of
ekuiper-sdk itself, and writes an ``install.sh`` that eKuiper runs at install time.

Example::

    from ekuiper_sdk.tools.vendor import VendorOptions
    from ekuiper_sdk.tools.pack import pack
    pack("myplugin", "myplugin.zip", vendor=VendorOptions())
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import Problem, VendorError
from .archive import ZIP_EPOCH, ZipEntry
from .manifest import Manifest

SDK_DIST = "ekuiper-sdk"
WHEELS_DIR = "wheels"
#: What ``lfedge/ekuiper:<tag>-slim-python`` runs: CPython 3.12 on Debian bookworm (glibc 2.36).
DEFAULT_PYTHON_VERSION = "3.12"
DEFAULT_PLATFORMS = ("x86_64", "aarch64")
DEFAULT_GLIBC = "2.36"
_ARCH_ALIASES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64",
                 "armv7l": "armv7l", "armv7": "armv7l", "arm": "armv7l"}
#: Requirements that have a pure-Python form, built (with this environment) where no
#: binary wheel fits a target: PyPI has no armv7 wheel of msgpack.
PURE_PYTHON_FORMS = {"msgpack": {"MSGPACK_PUREPYTHON": "1"}}
_MISSING_RE = re.compile(r"No matching distribution found for (\S+)")
_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class Target:
    """One interpreter and platform to resolve wheels for.

    >>> Target("3.12", "x86_64", ("manylinux_2_17_x86_64",)).abi
    'cp312'
    """

    python_version: str
    label: str
    platforms: tuple[str, ...]
    implementation: str = "cp"

    @property
    def abi(self) -> str:
        return f"{self.implementation}{self.python_version.replace('.', '')}"

    def summary(self) -> str:
        return f"CPython {self.python_version} on {self.label}"


@dataclass(frozen=True)
class VendorOptions:
    """Which wheels ``pack --vendor`` ships.

    ``platforms`` takes ``x86_64``/``amd64``, ``aarch64``/``arm64`` (glibc Linux up to
    ``glibc``), ``musl-x86_64``/``musl-aarch64`` (musl Linux, as on Alpine) or any pip
    platform tag such as ``musllinux_1_2_x86_64``. ``sdk_wheel`` uses
    a given ekuiper-sdk wheel instead of building one from the installed package.

    >>> [t.label for t in VendorOptions().targets()]
    ['linux x86_64 (glibc <= 2.36)', 'linux aarch64 (glibc <= 2.36)']
    """

    python_version: str = DEFAULT_PYTHON_VERSION
    platforms: tuple[str, ...] = DEFAULT_PLATFORMS
    glibc: str = DEFAULT_GLIBC
    sdk_wheel: str | None = None
    pip: tuple[str, ...] = ()
    #: Install into the interpreter eKuiper runs (shared by every plugin) instead of the
    #: plugin's own ``__pypackages__/`` folder.
    shared_python: bool = False
    #: Folders of wheels built elsewhere (for armv7: on the device, or under emulation),
    #: used besides the package index.
    find_links: tuple[str, ...] = ()

    def targets(self) -> list[Target]:
        """The targets, each with the pip platform tags it accepts."""
        return [platform_target(self.python_version, p, self.glibc) for p in self.platforms]


def platform_target(python_version: str, platform: str, glibc: str = DEFAULT_GLIBC) -> Target:
    """A target for an architecture alias or a raw pip platform tag.

    pip only widens ``manylinux2014``-style tags by itself, so for glibc Linux every
    ``manylinux_2_N`` tag a system with that glibc accepts is listed.

    >>> platform_target("3.12", "arm64", "2.28").platforms[:2]
    ('manylinux_2_28_aarch64', 'manylinux_2_27_aarch64')
    >>> platform_target("3.12", "musl-arm64").platforms
    ('musllinux_1_2_aarch64', 'musllinux_1_1_aarch64')
    """
    if not re.match(r"^\d+\.\d+$", python_version):
        raise VendorError([Problem("--python-version", f"{python_version!r} is not like 3.12",
                                   "pass MAJOR.MINOR")])
    if platform.startswith("musl-") and platform[5:] in _ARCH_ALIASES:
        # Alpine (musl libc): pip does not widen musllinux tags by itself either.
        musl_arch = _ARCH_ALIASES[platform[5:]]
        return Target(python_version, f"linux {musl_arch} (musl)",
                      (f"musllinux_1_2_{musl_arch}", f"musllinux_1_1_{musl_arch}"))
    arch = _ARCH_ALIASES.get(platform)
    if arch is None:
        if not re.match(r"^[a-z0-9_]+$", platform):
            raise VendorError([Problem("--platform", f"{platform!r} is not a platform",
                                       "use x86_64, aarch64 or a pip tag such as "
                                       "manylinux_2_17_x86_64")])
        return Target(python_version, platform, (platform,))
    match = re.match(r"^2\.(\d+)$", glibc)
    if not match or int(match.group(1)) < 17:
        raise VendorError([Problem("--glibc", f"{glibc!r} is not a glibc version >= 2.17",
                                   "pass e.g. 2.36 (Debian bookworm)")])
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(int(match.group(1)), 16, -1)]
    tags.append(f"manylinux2014_{arch}")  # pip adds manylinux2010/1 for x86_64 itself
    if arch == "armv7l":
        # PyPI has few armv7 wheels; one built on or for the device (--find-links) is
        # tagged linux_armv7l.
        tags.append("linux_armv7l")
    return Target(python_version, f"linux {arch} (glibc <= {glibc})", tuple(tags))


def host_platform() -> str:
    """The architecture alias of this machine, for vendoring wheels it can install itself.

    >>> host_platform() in ("x86_64", "aarch64") or True
    True
    """
    import platform

    return _ARCH_ALIASES.get(platform.machine().lower(), platform.machine().lower())


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_requirements(path: Path) -> list[str]:
    """The requirement lines of ``requirements.txt``, without comments and blank lines.

    Options (``-r``, ``-e``, ``--index-url``...) are refused: the wheels are resolved here
    and installed there with no index, so only plain requirements make sense.

    >>> p = Path(tempfile.mkdtemp()) / "requirements.txt"
    >>> _ = p.write_text("# deps\\nrequests>=2  # http\\n\\n")
    >>> read_requirements(p)
    ['requests>=2']
    """
    if not path.is_file():
        return []
    out = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        if line.startswith("-"):
            raise VendorError([Problem(f"{path}:{number}", f"option {line.split()[0]!r} cannot be "
                                       "vendored", "list plain requirements (name and version) "
                                       "only")])
        out.append(line)
    return out


def requirement_name(requirement: str) -> str:
    """The project name a requirement line is about.

    >>> requirement_name("Foo_Bar[extra]>=1; python_version>'3'")
    'foo-bar'
    """
    match = _NAME_RE.match(requirement)
    return _canonical(match.group(1)) if match else requirement.strip()


def sdk_requirements() -> tuple[str, list[str]]:
    """The installed ekuiper-sdk's version and its runtime requirements (no extras).

    >>> version, requires = sdk_requirements()
    >>> any(r.startswith("pynng") for r in requires)
    True
    """
    dist = importlib.metadata.distribution(SDK_DIST)
    requires = [r for r in (dist.requires or []) if "extra ==" not in r.replace('"', "'")
                and "extra==" not in r]
    return dist.version, requires


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def build_sdk_wheel() -> tuple[str, bytes]:
    """A wheel of the installed ekuiper-sdk, built from its files with no build tool or network.

    The package is pure Python, so its installed modules plus its metadata are the whole
    wheel; the bytes are deterministic. Returns ``(file name, bytes)``.

    The version carries a local label made from the files' hash (``0.1.0+s1a2b3c4d5e6``):
    ``install.sh`` lets pip keep an installed version, so a changed SDK under an unchanged
    release number would otherwise never replace the one installed before.

    >>> name, data = build_sdk_wheel()
    >>> name.startswith("ekuiper_sdk-") and name.endswith("-py3-none-any.whl")
    True
    """
    import ekuiper_sdk

    dist = importlib.metadata.distribution(SDK_DIST)
    version = dist.version
    # An in-place egg-info (a source checkout on sys.path) names the same file PKG-INFO.
    metadata = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    if not metadata:
        raise VendorError([Problem(SDK_DIST, "its installed metadata cannot be read",
                                   "reinstall it, or pass --sdk-wheel")])
    entry_points = dist.read_text("entry_points.txt")
    pkg_dir = Path(ekuiper_sdk.__file__).parent
    files: list[tuple[str, bytes]] = []
    for path in sorted(pkg_dir.rglob("*")):
        rel = path.relative_to(pkg_dir)
        if (not path.is_file() or "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo")
                or any(part.startswith(".") for part in rel.parts)):
            continue
        files.append((f"ekuiper_sdk/{rel.as_posix()}", path.read_bytes()))
    content = hashlib.sha256(b"".join(n.encode() + b"\0" + d for n, d in files)).hexdigest()
    version = f"{version.split('+', 1)[0]}+s{content[:12]}"
    metadata = re.sub(r"(?m)^Version: .*$", f"Version: {version}", metadata, count=1)
    info = f"ekuiper_sdk-{version}.dist-info"
    files.append((f"{info}/METADATA", metadata.encode("utf-8")))
    files.append((f"{info}/WHEEL", (b"Wheel-Version: 1.0\nGenerator: ekuiper-plugin\n"
                  b"Root-Is-Purelib: true\nTag: py3-none-any\n")))
    if entry_points:
        files.append((f"{info}/entry_points.txt", entry_points.encode("utf-8")))
    record = "".join(f"{n},{_record_hash(d)},{len(d)}\n" for n, d in files)
    record += f"{info}/RECORD,,\n"
    files.append((f"{info}/RECORD", record.encode("utf-8")))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files:
            zinfo = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            zinfo.create_system = 3
            zinfo.external_attr = 0o100644 << 16
            zinfo.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zinfo, data, compresslevel=9)
    return f"ekuiper_sdk-{version}-py3-none-any.whl", buf.getvalue()


def _wheel_version(path: Path) -> tuple[str, list[str]]:
    with zipfile.ZipFile(path) as zf:
        meta_name = next((n for n in zf.namelist() if n.endswith(".dist-info/METADATA")), None)
        if meta_name is None:
            raise VendorError([Problem(str(path), "has no METADATA",
                                       "pass a wheel of ekuiper-sdk")])
        text = zf.read(meta_name).decode("utf-8", "replace")
    version, requires, name = "", [], ""
    for line in text.splitlines():
        key, _, value = line.partition(": ")
        if key == "Name":
            name = value
        elif key == "Version":
            version = value
        elif key == "Requires-Dist" and "extra ==" not in value:
            requires.append(value)
        elif not line:
            break
    if _canonical(name) != SDK_DIST:
        raise VendorError([Problem(str(path), f"is a wheel of {name!r}",
                                   "pass a wheel of ekuiper-sdk to --sdk-wheel")])
    return version, requires


def _run_pip(cmd: Sequence[str], log: IO[str]) -> tuple[int, str]:
    """Run pip, showing its output (with its progress bar on a terminal); return its errors."""
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    if log.isatty():
        # pip draws its progress bar only when its stdout is a terminal, so give it ours.
        done = subprocess.run(list(cmd), stdout=log.fileno(), stderr=subprocess.PIPE, env=env,
                              stdin=subprocess.DEVNULL, check=False)
        err = done.stderr.decode("utf-8", "replace")
        log.write(err)
        return done.returncode, err
    with subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                          stdin=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        seen = []
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace")
            seen.append(line)
            log.write("    " + line)
            log.flush()
        return proc.wait(), "".join(seen)


def pure_python_wheel(name: str, dest: Path, pip: Sequence[str], log: IO[str]) -> bool:
    """Build the pure-Python wheel of ``name`` (one of ``PURE_PYTHON_FORMS``) into ``dest``
    from its source release; whether it was built."""
    env = PURE_PYTHON_FORMS.get(_canonical(name))
    if env is None:
        return False
    pip_cmd = list(pip) or [sys.executable, "-m", "pip"]
    log.write(f"building the pure-Python form of {name} (no binary wheel fits)\n")
    done = subprocess.run(pip_cmd + ["wheel", "--no-deps", "--no-binary", name, "--wheel-dir",
                                     str(dest), name], env=dict(os.environ, **env),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        log.write(done.stdout.decode("utf-8", "replace"))
    return done.returncode == 0


def download_wheels(requirements: Sequence[str], targets: Sequence[Target], dest: Path,
                    pip: Sequence[str] = (), log: IO[str] | None = None,
                    find_links: Sequence[str] = ()) -> list[Path]:
    """Download binary wheels of ``requirements`` and their dependencies for every target.

    Every target is tried; a requirement with no wheel for one is named in the
    ``VendorError`` raised at the end, so nothing is written from a partial resolution.

    >>> download_wheels(["six"], VendorOptions().targets(), Path("wheels"))   # doctest: +SKIP
    [PosixPath('wheels/six-1.17.0-py2.py3-none-any.whl')]
    """
    log = log if log is not None else sys.stderr
    pip_cmd = list(pip) or [sys.executable, "-m", "pip"]
    dest.mkdir(parents=True, exist_ok=True)
    if not requirements:
        return []
    req_file = dest.parent / "requirements.in"
    req_file.write_text("\n".join(requirements) + "\n", encoding="utf-8")
    problems: list[Problem] = []
    for i, target in enumerate(targets, 1):
        log.write(f"[{i}/{len(targets)}] wheels for {target.summary()}: "
                  f"{', '.join(requirements)}\n")
        log.flush()
        cmd = pip_cmd + ["download", "--only-binary=:all:", "--dest", str(dest),
                         "--python-version", target.python_version,
                         "--implementation", target.implementation, "--abi", target.abi]
        for tag in target.platforms:
            cmd += ["--platform", tag]
        # dest itself, for the pure-Python wheels built below.
        for folder in (*find_links, str(dest)):
            cmd += ["--find-links", folder]
        cmd += ["-r", str(req_file)]
        code, output = _run_pip(cmd, log)
        missing = _MISSING_RE.findall(output)
        if code != 0 and missing and all(
                pure_python_wheel(requirement_name(m), dest, pip, log) for m in missing):
            code, output = _run_pip(cmd, log)
            missing = _MISSING_RE.findall(output)
        if code == 0:
            continue
        if missing:
            fix = ("pick a version that publishes one, or leave this target out with "
                   "--platform")
            if "linux_armv7l" in target.platforms:
                fix = ("build its armv7 wheel on or for the device and pass the folder with "
                       "--find-links (docs/deploy.md, \"On arm/v7\")")
            for req in dict.fromkeys(missing):
                problems.append(Problem("requirements", f"{req!r} has no wheel for "
                                        f"{target.summary()}", fix))
        else:
            errors = [ln.strip() for ln in output.splitlines() if ln.startswith("ERROR")]
            problems.append(Problem("pip download", f"failed for {target.summary()}: "
                                    f"{errors[-1] if errors else f'exit {code}'}",
                                    "check the requirement and the network (or the proxy)"))
    if problems:
        raise VendorError(problems)
    return sorted(dest.glob("*.whl"))


# A raw string: the shell's own escapes (printf's \n) and line continuations stay as written.
INSTALL_SH = r"""#!/bin/sh
# Installs this plugin's Python dependencies from the wheels in wheels/, with no network,
# into the plugin's own @PACKAGES@/ folder (or, when packed with --shared-python, into the
# interpreter itself). eKuiper runs it with /bin/sh in the plugin folder when the plugin is
# installed or updated; running it again is harmless. It installs with the interpreter
# eKuiper starts the plugin with: $EKUIPER_PYTHON if set, else eKuiper's portable.pythonBin
# as eKuiper reads it (KUIPER__PORTABLE__PYTHONBIN, which eKuiper passes on to this script,
# over etc/kuiper.yaml), else `python` (portable.pythonBin's default), else `python3`.
here=$(cd "$(dirname "$0")" && pwd)
wheels="$here/@WHEELS@"
conda_env='@CONDA_ENV@'
own_folder='@OWN_FOLDER@'
# Each failure is one line on stderr: eKuiper returns it as the reason of the failed install.
fail() {
    printf 'install.sh: %s\n' "$*" >&2
    exit 1
}
py="${EKUIPER_PYTHON:-${KUIPER__PORTABLE__PYTHONBIN:-}}"
if [ -z "$py" ] && [ -z "$conda_env" ]; then
    # portable.pythonBin in eKuiper's etc/kuiper.yaml: the plugin folder is
    # plugins/portable/<name>/ in eKuiper's base folder (or $KuiperBaseKey).
    conf="${KuiperBaseKey:-$here/../../..}/etc/kuiper.yaml"
    if [ -r "$conf" ]; then
        py=$(sed -n 's/^[[:space:]]*pythonBin:[[:space:]]*//p' "$conf" |
             sed 's/[[:space:]]*#.*$//; s/^["'"'"']//; s/["'"'"']$//' | head -n 1)
    fi
fi
if [ -z "$py" ] && [ -z "$conda_env" ]; then
    for candidate in python python3; do
        if command -v "$candidate" >/dev/null 2>&1; then py=$candidate; break; fi
    done
    [ -n "$py" ] || fail "no python or python3 on PATH; install Python 3, or point eKuiper" \
        "at one with portable.pythonBin in etc/kuiper.yaml (or KUIPER__PORTABLE__PYTHONBIN)"
fi
run_python() {
    if [ -n "$conda_env" ] && [ -z "${EKUIPER_PYTHON:-}" ]; then
        conda run -n "$conda_env" python "$@"
    else
        "$py" "$@"
    fi
}
[ -f "$wheels/requirements.txt" ] ||
    fail "$wheels/requirements.txt is missing; pack the plugin again with --vendor"
# Importing pip is the check, since starting pip's command line costs half a second.
run_python -c 'import pip' >/dev/null 2>&1 ||
    fail "pip is not available for ${py:-conda env $conda_env}, the Python eKuiper runs" \
        "plugins with; install pip for it (apt-get install python3-pip, apk add py3-pip)," \
        "or point portable.pythonBin in etc/kuiper.yaml (or KUIPER__PORTABLE__PYTHONBIN)" \
        "at an interpreter that has pip"
tags=$(run_python -c 'import sys, platform
print("%s %d.%d on %s %s" % (platform.python_implementation(), sys.version_info[0],
      sys.version_info[1], sys.platform, platform.machine()))' 2>/dev/null)
# The one command that packs for this machine: its Python version, architecture and libc.
repack=$(run_python -c 'import sys, platform
libc, version = platform.libc_ver()
machine = platform.machine()
if libc == "glibc":
    where = "--platform %s --glibc %s" % (machine, version)
else:
    where = "--platform musllinux_1_2_%s" % machine
print("ekuiper-plugin pack <plugin folder> --vendor --python-version %d.%d %s"
      % (sys.version_info[0], sys.version_info[1], where))' 2>/dev/null)
# --isolated: no pip configuration or PIP_* variable may add an index or other wheel folders.
pip_install() {
    PIP_ROOT_USER_ACTION=ignore run_python -m pip --isolated install --no-index \
        --disable-pip-version-check --no-warn-script-location \
        --find-links "$wheels" -r "$wheels/requirements.txt" "$@"
}
# Bytecode is written by Python on the first start instead, which keeps an update quick.
missing() {
    printf '%s\n' "$out" >&2
    req=$(printf '%s\n' "$out" | sed -n 's/.*No matching distribution found for //p' | head -n 1)
    fail "a wheel${req:+ of $req} for $tags is missing in @WHEELS@/;" \
        "pack again for this machine: $repack"
}
# Every native module is loaded once, so that a shared library the system lacks (pynng's
# aarch64 wheel needs libatomic.so.1, which a minimal Debian does not have) fails the
# install here, naming the library, instead of killing the plugin at its first start.
# Prints "<package> <library>" for the first module that does not load.
unloadable() {
    run_python -c 'import ctypes, os, re, sys
root = sys.argv[1]
for folder, _, files in sorted(os.walk(root)):
    for name in sorted(files):
        if not re.search(r"\.so(\.|$)", name):
            continue
        try:
            ctypes.CDLL(os.path.join(folder, name))
        except OSError as exc:
            top = os.path.relpath(folder, root).split(os.sep)[0]
            top = name.split(".")[0] if top == "." else top
            lib = re.search(r"([^/: ]+): cannot open shared object", str(exc))
            print(re.sub(r"\.libs$", "", top), lib.group(1) if lib else str(exc))
            sys.exit(1)' "$1" 2>/dev/null
}
# The system package that brings a library, on Debian (Raspberry Pi OS) and on Alpine.
system_package() {
    case "$1" in
        libatomic.so.*) echo "apt-get install libatomic1; apk add libatomic" ;;
        libstdc++.so.*) echo "apt-get install libstdc++6; apk add libstdc++" ;;
        libgcc_s.so.*) echo "apt-get install libgcc-s1; apk add libgcc" ;;
        libz.so.*) echo "apt-get install zlib1g; apk add zlib" ;;
        libffi.so.*) echo "apt-get install libffi8; apk add libffi" ;;
        *) echo "install the system package that provides $1" ;;
    esac
}
if [ -n "$own_folder" ]; then
    # The plugin's own folder, rebuilt from the wheels each time (eKuiper runs this script
    # again on every update): the interpreter itself is never changed, and an older build
    # stays in place until the new one is complete.
    target="$here/@PACKAGES@"
    rm -rf "$target.new"
    if ! out=$(pip_install --no-compile --target "$target.new" 2>&1); then
        rm -rf "$target.new"
        missing
    fi
    if broken=$(unloadable "$target.new"); [ -n "$broken" ]; then
        rm -rf "$target.new"
        fail "${broken%% *} cannot load on $tags: it needs ${broken#* }, which this" \
            "system lacks; install it ($(system_package "${broken#* }")), then install the" \
            "plugin again"
    fi
    rm -rf "$target" && mv "$target.new" "$target" ||
        fail "cannot replace $target; check the permissions of the plugin folder"
    where="into @PACKAGES@/"
else
    out=$(pip_install 2>&1) || missing
    where="into the interpreter"
fi
printf '%s\n' "$out"
echo "install.sh: dependencies installed for $tags $where"
"""


def install_script(manifest: Manifest, shared_python: bool = False) -> str:
    """The ``install.sh`` shipped with vendored wheels: it installs them into the plugin's
    ``__pypackages__/`` folder, or with ``shared_python`` into the interpreter itself.

    >>> install_script(Manifest("p", "1", "python", "main.py", functions=("f",))).splitlines()[0]
    '#!/bin/sh'
    """
    conda_env = manifest.env if manifest.virtual_env_type == "conda" and manifest.env else ""
    if "'" in conda_env:
        raise VendorError([Problem(f"{manifest.name}.json", f"env {conda_env!r} holds a quote",
                                   "rename the conda environment")])
    from .launcher import PACKAGES_DIR

    return (INSTALL_SH.replace("@CONDA_ENV@", conda_env).replace("@WHEELS@", WHEELS_DIR)
            .replace("@OWN_FOLDER@", "" if shared_python else "1")
            .replace("@PACKAGES@", PACKAGES_DIR))


def vendor_entries(plugin_dir: Path, manifest: Manifest, options: VendorOptions,
                   log: IO[str] | None = None) -> list[ZipEntry]:
    """The zip entries ``--vendor`` adds: ``wheels/*.whl``, ``wheels/requirements.txt`` and
    ``install.sh`` (``pack`` adds the launcher unless ``options.shared_python``). Raises
    ``VendorError`` naming each requirement with no wheel.

    >>> entries = vendor_entries(Path("pysam"), manifest, VendorOptions())   # doctest: +SKIP
    """
    log = log if log is not None else sys.stderr
    if manifest.language != "python":
        raise VendorError([Problem(f"{manifest.name}.json", "--vendor ships Python wheels but "
                                   f"the plugin's language is {manifest.language!r}",
                                   "pack without --vendor")])
    targets = options.targets()
    user_reqs = read_requirements(plugin_dir / "requirements.txt")
    # ekuiper-sdk comes from the wheel built below (it may not be on any index).
    user_reqs = [r for r in user_reqs if requirement_name(r) != SDK_DIST]
    if options.sdk_wheel:
        sdk_path = Path(options.sdk_wheel)
        if not sdk_path.is_file():
            raise VendorError([Problem(str(sdk_path), "missing", "pass an existing wheel file")])
        sdk_version, sdk_reqs = _wheel_version(sdk_path)
        sdk_name, sdk_data = sdk_path.name, sdk_path.read_bytes()
    else:
        _, sdk_reqs = sdk_requirements()
        sdk_name, sdk_data = build_sdk_wheel()
        sdk_version = sdk_name.split("-")[1]   # with the content's local label
    to_download = list(dict.fromkeys(user_reqs + sdk_reqs))
    with tempfile.TemporaryDirectory(prefix="ekuiper-vendor-") as tmp:
        wheels = download_wheels(to_download, targets, Path(tmp) / WHEELS_DIR,
                                 pip=options.pip, log=log, find_links=options.find_links)
        from .wheel_check import notes

        for line in notes(wheels):
            log.write(f"note: {line}\n")
        entries = [ZipEntry(f"{WHEELS_DIR}/{w.name}", w.read_bytes()) for w in wheels
                   if w.name != sdk_name]
    entries.append(ZipEntry(f"{WHEELS_DIR}/{sdk_name}", sdk_data))
    lock = "\n".join(user_reqs + [f"{SDK_DIST}=={sdk_version}"]) + "\n"
    entries.append(ZipEntry(f"{WHEELS_DIR}/requirements.txt", lock.encode("utf-8")))
    script = install_script(manifest, options.shared_python)
    entries.append(ZipEntry("install.sh", script.encode("utf-8"), 0o755))
    total = sum(len(e.data) for e in entries)
    log.write(f"vendored {len(wheels) + 1} wheels for {len(targets)} target(s), "
              f"{total / 1e6:.1f} MB\n")
    return entries
