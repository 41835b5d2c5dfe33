"""Whether a vendored zip can run on a server, before it is sent there (``install --check``).

The server is probed as ``doctor`` does; the zip's wheels are read by their file names
(``name-version-python-abi-platform.whl``): every distribution with binary wheels needs one
whose Python and platform tags the server's interpreter accepts. A zip without ``wheels/``
relies on the server's Python, so the SDK must import there.

Example::

    problems = unfit(Path("demo.zip"), probe(client))
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import IO

from ..errors import RestError
from .doctor import Report, pack_command, probe, vendor_options_for
from .rest import RestClient

_WHEEL_RE = re.compile(r"^wheels/([^/-]+)-[^/-]+(?:-\d[^/-]*)?-([^/-]+)-([^/-]+)-([^/-]+)\.whl$")


def _python_fits(python_tag: str, abi_tag: str, version: tuple[int, int]) -> bool:
    """``cp311-cp311`` for 3.11; ``cp39-abi3`` for 3.9 and newer; ``py3-none``.

    >>> _python_fits("cp39", "abi3", (3, 12)), _python_fits("cp312", "cp312", (3, 11))
    (True, False)
    """
    for tag in python_tag.split("."):
        if tag.startswith("py3") or tag == "py2.py3":
            return True
        match = re.match(r"^cp3(\d+)$", tag)
        if match:
            minor = int(match.group(1))
            if abi_tag == "abi3" and minor <= version[1]:
                return True
            if minor == version[1]:
                return True
    return False


def unfit(zip_path: Path, report: Report) -> list[str]:
    """Why the zip cannot run on the reported server (empty when it can)."""
    problems = [f"{f.what}: {f.fix}" for f in report.findings if f.blocking]
    if not report.python_version:
        return problems
    version = tuple(int(p) for p in report.python_version.split(".")[:2])
    target = vendor_options_for(report).targets()[0]
    accepted = set(target.platforms) | {"any"}
    with zipfile.ZipFile(zip_path) as zf:
        wheels = [m.groups() for m in map(_WHEEL_RE.match, zf.namelist()) if m]
    if not wheels:
        missing = [m for m in ("pynng", "msgpack", "ekuiper_sdk") if not report.module(m)[0]]
        if missing:
            problems.append(f"{zip_path.name} has no wheels and the server's Python lacks "
                            f"{', '.join(missing)}; pack with --vendor: {pack_command(report)}")
        return problems
    by_dist: dict[str, bool] = {}
    for dist, python_tag, abi_tag, platform_tag in wheels:
        fits = (_python_fits(python_tag, abi_tag, (version[0], version[1]))
                and bool(set(platform_tag.split(".")) & accepted))
        by_dist[dist] = by_dist.get(dist, False) or fits
    lacking = sorted(dist for dist, fits in by_dist.items() if not fits)
    if lacking:
        problems.append(f"{zip_path.name} has no wheel of {', '.join(lacking)} for "
                        f"{target.summary()}, which the server runs; pack for it: "
                        f"{pack_command(report)}")
    return problems


def refuse_unfit(client: RestClient, zip_path: str | Path, log: IO[str] | None = None) -> None:
    """``RestError`` naming why the zip cannot run on the server, before it is sent."""
    problems = unfit(Path(zip_path), probe(client, log=log))
    if problems:
        raise RestError(f"not installed: {problems[0]}",
                        hint="; ".join(problems[1:]))
