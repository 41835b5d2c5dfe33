"""Zips of one plugin at several versions, and a fleet file, for the fleet tests."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from ekuiper_sdk.tools.fleet.inventory import Server
from ekuiper_sdk.tools.fleet.releases import Release, ReleaseHistory
from ekuiper_sdk.tools.fleet.rollout import Options, Result, rollout
from ekuiper_sdk.tools.pack import pack

from .pack_helpers import manifest_of, new_plugin, write_manifest


def versions(tmp: Path, *names: str) -> dict[str, Release]:
    """One plugin packed at each version in ``names``: {version: Release}."""
    plugin = new_plugin(tmp / "src")
    found = {}
    for version in names:
        data = manifest_of(plugin)
        data["version"] = version
        write_manifest(plugin, data)
        out = tmp / "zips" / f"{plugin.name}-{version}.zip"
        pack(plugin, out, check_code=False, log=io.StringIO())
        found[version] = Release.of_zip(out)
    return found


def write_fleet(path: Path, urls: Sequence[str]) -> Path:
    path.write_text("# the test fleet\n" + "".join(f"{u}\n" for u in urls))
    return path


def run(urls: Sequence[str], release: Release, history: ReleaseHistory,
        **options: object) -> tuple[Result, str]:
    """A rollout with short settle windows; its result and its step lines."""
    settings: dict[str, object] = {"settle": 0.2, "timeout": 20.0, "observe": 0.1}
    settings.update(options)
    out = io.StringIO()
    result = rollout([Server(u) for u in urls], release, history,
                     Options(**settings),  # type: ignore[arg-type]
                     out=out)
    return result, out.getvalue()
