"""``ekuiper-plugin doctor``: what an eKuiper server offers a Python plugin, and what is missing.

The server is asked through its REST API alone: ``GET /`` gives eKuiper's version, OS and
architecture, and a probe (``server_script.run_script``: a plugin whose ``install.sh``
reports and then fails, so that eKuiper removes it) reads the rest where eKuiper runs: the
C library and its version, the Python eKuiper starts plugins with (``portable.pythonBin``,
from ``KUIPER__PORTABLE__PYTHONBIN`` or ``etc/kuiper.yaml``, as eKuiper reads it), whether
pip, pynng, msgpack, ekuiper_sdk and the official ekuiper import there, the system libraries
the SDK's wheels need, and whether ``/tmp`` (where eKuiper puts the plugins' IPC sockets)
and ``data/`` are writable by eKuiper's user.

Example::

    report = probe(RestClient("http://127.0.0.1:9081"))
    print(render(report))
    options = vendor_options_for(report)     # what ``pack --vendor --for URL`` packs for
"""

from __future__ import annotations

import argparse
import io  # noqa: F401 - for the doctest
import json
import secrets
from dataclasses import dataclass, field
from typing import IO, Any, Callable

from ..errors import RestError
from .rest import RestClient
from .server_script import run_script
from .vendor import VendorOptions

#: What the probe's Python reports, one ``key=value`` a line (no JSON: it may be old).
_PY_PROBE = r"""
import ctypes, platform, sys
print("python_version=%d.%d.%d" % sys.version_info[:3])
print("python_impl=" + platform.python_implementation())
print("python_executable=" + sys.executable)
libc, version = platform.libc_ver()
print("py_libc=%s %s" % (libc, version))
for name in ("pip", "pynng", "msgpack", "ekuiper_sdk", "ekuiper"):
    try:
        module = __import__(name)
    except Exception as exc:
        print("module_%s=missing %s" % (name, str(exc).splitlines()[0] if str(exc) else ""))
        continue
    version = getattr(module, "__version__", "")
    if not version:
        try:
            from importlib import metadata
            version = metadata.version({"ekuiper_sdk": "ekuiper-sdk"}.get(name, name))
        except Exception:
            version = "?"
    print("module_%s=ok %s" % (name, version))
for lib in ("libatomic.so.1", "libstdc++.so.6", "libgcc_s.so.1"):
    try:
        ctypes.CDLL(lib)
        print("lib_%s=ok" % lib)
    except OSError:
        print("lib_%s=missing" % lib)
"""

# eKuiper runs install.sh in plugins/portable/<name>/ with its own environment, so the
# base folder is three levels up unless KuiperBaseKey says otherwise; pythonBin is read
# as eKuiper does: the environment variable over etc/kuiper.yaml over "python".
_SH_PROBE = r"""here=$(cd "$(dirname "$0")" && pwd)
base=${KuiperBaseKey:-$(cd "$here/../../.." && pwd)}
echo "base=$base"
echo "machine=$(uname -m)"
echo "uid=$(id -u)"
if [ -r /etc/os-release ]; then (. /etc/os-release; echo "os=${PRETTY_NAME:-$ID}"); fi
if v=$(getconf GNU_LIBC_VERSION 2>/dev/null); then echo "libc=$v"; fi
for ld in /lib/ld-musl-*.so.1; do
    [ -e "$ld" ] && echo "libc=musl $("$ld" 2>&1 | sed -n 's/^Version //p')"
done
py=${KUIPER__PORTABLE__PYTHONBIN:-}
source="KUIPER__PORTABLE__PYTHONBIN"
if [ -z "$py" ] && [ -r "$base/etc/kuiper.yaml" ]; then
    py=$(sed -n 's/^[[:space:]]*pythonBin:[[:space:]]*//p' "$base/etc/kuiper.yaml" |
         sed 's/[[:space:]]*#.*$//; s/^["'"'"']//; s/["'"'"']$//' | head -n 1)
    source="portable.pythonBin in etc/kuiper.yaml"
fi
if [ -z "$py" ]; then py=python; source="the default of portable.pythonBin"; fi
echo "python_bin=$py"
echo "python_source=$source"
if command -v "$py" >/dev/null 2>&1; then
    echo "python_path=$(command -v "$py")"
    "$py" -c '@PY_PROBE@' 2>&1 | sed 's/^/py_/; s/^py_py_libc/py_libc/'
fi
if t=$(mktemp /tmp/ekuiper-doctor.XXXXXX 2>/dev/null); then
    rm -f "$t"; echo "ipc_writable=yes"
else
    echo "ipc_writable=no"
fi
if [ -w "$base/data" ]; then echo "data_writable=yes"; else echo "data_writable=no"; fi"""


def probe_script() -> str:
    """The probe's install.sh body (the Python part holds no single quote, as sh needs).

    >>> "python_bin=" in probe_script() and "'" not in _PY_PROBE
    True
    """
    return _SH_PROBE.replace("@PY_PROBE@", _PY_PROBE.strip())


def parse_lines(text: str) -> dict[str, str]:
    """``key=value`` lines; the first value of a key wins (``libc`` may come twice).

    >>> parse_lines("a=1\\nb=x=y\\nnoise\\na=2\\n")
    {'a': '1', 'b': 'x=y'}
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and key.replace("_", "").replace(".", "").replace("+", "").isalnum():
            out.setdefault(key, value.strip())
    return out


@dataclass
class Finding:
    """One missing piece and its fix."""

    what: str
    fix: str
    #: A plugin cannot run there until it is fixed (advice otherwise).
    blocking: bool = True

    def __str__(self) -> str:
        return f"{self.what}: {self.fix}"


@dataclass
class Report:
    """What a server offers a Python plugin."""

    server: str
    ekuiper: dict[str, Any]
    facts: dict[str, str]
    findings: list[Finding] = field(default_factory=list)

    @property
    def machine(self) -> str:
        return self.facts.get("machine", str(self.ekuiper.get("arch", "")))

    @property
    def libc(self) -> tuple[str, str]:
        """``("glibc" | "musl" | "", version)``."""
        name, _, version = self.facts.get("libc", "").partition(" ")
        return ("glibc" if name.lower() == "glibc" else name.lower()), version

    @property
    def python_version(self) -> str:
        """``MAJOR.MINOR`` of the configured Python, or ``""`` when it does not run."""
        full = self.facts.get("py_python_version", "")
        return ".".join(full.split(".")[:2])

    def module(self, name: str) -> tuple[bool, str]:
        state, _, detail = self.facts.get(f"py_module_{name}", "missing ").partition(" ")
        return state == "ok", detail

    @property
    def ok(self) -> bool:
        """No finding blocks a vendored plugin."""
        return not any(f.blocking for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        ok = self.ok
        return {"ok": ok, "server": self.server, "ekuiper": self.ekuiper, "facts": self.facts,
                "findings": [{"what": f.what, "fix": f.fix, "blocking": f.blocking}
                             for f in self.findings],
                "pack": pack_command(self) if self.python_version else None}


def pack_command(report: Report) -> str:
    """The ``pack`` command whose wheels fit the server.

    >>> r = Report("s", {}, {"machine": "aarch64", "libc": "glibc 2.36",
    ...                     "py_python_version": "3.11.2"})
    >>> pack_command(r).split(" --vendor ")[1]
    '--python-version 3.11 --platform aarch64 --glibc 2.36'
    """
    options = vendor_options_for(report)
    where = " ".join(f"--platform {p}" for p in options.platforms)
    glibc = f" --glibc {options.glibc}" if report.libc[0] == "glibc" else ""
    return (f"ekuiper-plugin pack <plugin folder> --vendor --python-version "
            f"{options.python_version} {where}{glibc}")


def vendor_options_for(report: Report, base: VendorOptions | None = None) -> VendorOptions:
    """``base`` (default options) retargeted at exactly the server's Python, architecture
    and C library. ``RestError`` when the server has no Python that runs."""
    base = base or VendorOptions()
    if not report.python_version:
        raise RestError(f"eKuiper at {report.server} has no Python that runs "
                        f"({report.facts.get('python_bin', 'python')})",
                        hint="run `ekuiper-plugin doctor` for the fix")
    libc, version = report.libc
    platform = f"musl-{report.machine}" if libc == "musl" else report.machine
    glibc = version if libc == "glibc" and version.startswith("2.") else base.glibc
    return VendorOptions(python_version=report.python_version, platforms=(platform,),
                         glibc=glibc, sdk_wheel=base.sdk_wheel, pip=base.pip,
                         shared_python=base.shared_python, find_links=base.find_links)


def _findings(report: Report) -> list[Finding]:
    facts = report.facts
    out: list[Finding] = []
    setting = ("portable.pythonBin in etc/kuiper.yaml (or the environment variable "
               "KUIPER__PORTABLE__PYTHONBIN)")
    if "python_path" not in facts:
        out.append(Finding(f"Python {facts.get('python_bin', 'python')!r} is not found on the "
                           "server", f"install Python 3.9+ there, or point {setting} at one"))
        return out + _folder_findings(facts)
    if not report.python_version:
        out.append(Finding(f"Python {facts['python_path']} does not run", f"fix it or point "
                           f"{setting} at another"))
        return out + _folder_findings(facts)
    if tuple(int(p) for p in report.python_version.split(".")) < (3, 9):
        out.append(Finding(f"Python {report.python_version} is older than 3.9",
                           f"point {setting} at Python 3.9 or newer"))
    if not report.module("pip")[0]:
        out.append(Finding("pip is missing for that Python, and install.sh needs it",
                           "install it (apt-get install python3-pip; apk add py3-pip)"))
    missing = [m for m in ("pynng", "msgpack", "ekuiper_sdk") if not report.module(m)[0]]
    if missing:
        out.append(Finding(f"{', '.join(missing)} not importable there",
                           f"pack with --vendor for this server: {pack_command(report)}",
                           blocking=False))
    if report.machine in ("aarch64", "arm64") and facts.get("py_lib_libatomic.so.1") == "missing":
        out.append(Finding("libatomic.so.1 is missing, and pynng's aarch64 wheel needs it",
                           "apt-get install libatomic1 (Alpine: apk add libatomic)"))
    return out + _folder_findings(facts)


def _folder_findings(facts: dict[str, str]) -> list[Finding]:
    out = []
    if facts.get("ipc_writable") != "yes":
        out.append(Finding("/tmp is not writable by eKuiper's user, and eKuiper puts the "
                           "plugins' IPC sockets there", "mount a writable /tmp (in Docker: "
                           "--tmpfs /tmp, or drop --read-only)"))
    if facts.get("data_writable") != "yes":
        out.append(Finding(f"{facts.get('base', '')}/data is not writable by uid "
                           f"{facts.get('uid', '?')}", "give that user the folder (chown), "
                           "or mount a volume it owns"))
    return out


def probe(client: RestClient, *, via: str = "auto", log: IO[str] | None = None) -> Report:
    """Ask the server; its probe plugin is removed by eKuiper itself, also when this is
    interrupted (the probe's install.sh always fails)."""
    info = client.request("GET", "/").json()
    name = f"ekdoctor_{secrets.token_hex(4)}"
    output = run_script(client, name, probe_script(), via=via, log=log)
    report = Report(client.server, dict(info or {}), parse_lines(output.stdout))
    report.findings = _findings(report)
    return report


def render(report: Report) -> str:
    """One screen: what the server has, then each missing piece with its fix."""
    f = report.facts
    ek = report.ekuiper
    libc, version = report.libc
    lines = [f"eKuiper {ek.get('version', '?')} at {report.server}",
             f"  system     {f.get('os', '?')}, {report.machine}, "
             f"{(libc + ' ' + version).strip() or 'libc ?'}, eKuiper runs as uid "
             f"{f.get('uid', '?')}",
             f"  python     {f.get('python_bin', '?')} ({f.get('python_source', '?')})"
             + (f" = {f['python_path']}, {f.get('py_python_impl', '')} "
                f"{f.get('py_python_version', 'does not run')}" if "python_path" in f
                else ": not found")]
    if report.python_version:
        mods = []
        for name in ("pip", "pynng", "msgpack", "ekuiper_sdk", "ekuiper"):
            ok, detail = report.module(name)
            mods.append(f"{name} {detail}" if ok else f"{name} missing")
        lines.append("  packages   " + ", ".join(mods))
        libs = [k[len("py_lib_"):] for k in sorted(f)
                if k.startswith("py_lib_") and f[k] == "missing"]
        lines.append("  system libraries  " + ("missing: " + ", ".join(libs) if libs
                                               else "libatomic, libstdc++, libgcc_s present"))
    def writable(key: str) -> str:
        return "writable" if f.get(key) == "yes" else "NOT writable"

    lines.append(f"  folders    /tmp (IPC sockets) {writable('ipc_writable')}, "
                 f"{f.get('base', '?')}/data {writable('data_writable')}")
    if report.findings:
        lines.append("to fix:")
        lines += [f"  - {finding}" for finding in report.findings]
    else:
        lines.append("nothing missing")
    if report.python_version:
        lines.append(f"pack for it: {pack_command(report)}  (or: pack --vendor --for "
                     f"{report.server})")
    return "\n".join(lines)


def _cmd_doctor(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    client = RestClient(args.server, token=args.token, timeout=args.timeout)
    report = probe(client, via=args.via, log=err)
    out.write((json.dumps(report.to_dict()) if args.json else render(report)) + "\n")
    return 0 if report.ok else 1


def add_doctor_parser(sub: Any, server_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``doctor`` subcommand, with the common server options."""
    p = sub.add_parser("doctor", help="show what a server offers a Python plugin, and what "
                       "is missing (exit 1 when a vendored plugin cannot run there)")
    p.add_argument("--via", choices=("auto", "file", "upload", "serve"), default="auto",
                   help="how eKuiper gets the probe's zip (as for install)")
    server_args(p)
    p.set_defaults(func=_cmd_doctor)


#: ``pack --target``: eKuiper's images with Python, as their Dockerfiles build them.
IMAGE_TARGETS: dict[str, tuple[str, tuple[str, ...]]] = {
    # python:3.12-slim-bookworm, glibc 2.36
    "slim-python": ("3.12", ("x86_64", "aarch64")),
    # python:3.12-alpine, musl libc
    "alpine-python": ("3.12", ("musl-x86_64", "musl-aarch64")),
}


def add_target_args(p: argparse.ArgumentParser) -> None:
    """``pack``'s ``--target`` and ``--for``, which set the wheels' Python and platforms."""
    p.add_argument("--target", choices=sorted(IMAGE_TARGETS), help="with --vendor: wheels "
                   "for this eKuiper image flavour (lfedge/ekuiper:<tag>-<flavour>), on "
                   "x86_64 and aarch64")
    p.add_argument("--find-links", action="append", metavar="DIR", help="with --vendor: "
                   "also take wheels from this folder (repeatable), e.g. armv7 wheels built "
                   "on or for the device")
    p.add_argument("--for", dest="for_server", metavar="URL", help="with --vendor: ask this "
                   "eKuiper server (as `doctor` does) and pack for exactly its Python, "
                   "architecture and C library")


def retarget(args: argparse.Namespace, options: VendorOptions, log: IO[str]) -> VendorOptions:
    """``options`` with ``--target`` or ``--for`` applied.

    >>> ns = argparse.Namespace(target="alpine-python", for_server=None)
    >>> retarget(ns, VendorOptions(), io.StringIO()).platforms
    ('musl-x86_64', 'musl-aarch64')
    """
    target, server = getattr(args, "target", None), getattr(args, "for_server", None)
    if target and server:
        raise RestError("--target and --for both choose the wheels",
                        hint="pass only one of them")
    if target:
        version, platforms = IMAGE_TARGETS[target]
        return VendorOptions(python_version=version, platforms=platforms, glibc=options.glibc,
                             sdk_wheel=options.sdk_wheel, pip=options.pip,
                             shared_python=options.shared_python,
                             find_links=options.find_links)
    if server:
        client = RestClient(server, token=getattr(args, "token", None))
        report = probe(client, log=log)
        chosen = vendor_options_for(report, options)
        log.write(f"packing for {server}: {chosen.targets()[0].summary()}\n")
        return chosen
    return options
