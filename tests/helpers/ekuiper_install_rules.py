"""An independent model of how eKuiper installs a portable-plugin zip.

See docs/protocol.md, "Packaging and install".

Written from eKuiper's installer behaviour, not from ekuiper_sdk.tools, so that the
tests check the SDK's zips against the host's rules rather than against themselves:

* the root holds ``<name>.json`` exactly (else "missing or invalid json file");
* the manifest decodes, its ``name`` (when given) equals the install name, ``language`` is
  ``go`` or ``python``, ``executable`` is set, at least one symbol is declared;
* after cleaning every entry name, the executable and ``sources/<src>.yaml`` of every
  source are present;
* files under ``sources/``, ``sinks/``, ``functions/`` go to the etc and data folders, all
  others to ``plugins/portable/<name>/``;
* a file's parent folder is created with a single-level mkdir, so a nested folder must have
  been created by an earlier directory entry (or already exist).
"""

from __future__ import annotations

import json
import os
import posixpath
import stat
import zipfile
from pathlib import Path

SPECIAL = ("sources/", "sinks/", "functions/")


class InstallFailure(Exception):
    """eKuiper's installer would fail with this text."""


def _clean(name: str) -> str:
    cleaned = posixpath.normpath(name)
    return "" if cleaned == "." else cleaned


def read_manifest(zf: zipfile.ZipFile, name: str) -> dict[str, object]:
    json_name = f"{name}.json"
    infos = zf.infolist()
    entry = next((i for i in infos if i.filename == json_name), None)
    if entry is None:
        raise InstallFailure(f"missing or invalid json file {json_name}, "
                             f"found {len(infos)} files in total")
    data = json.loads(zf.read(entry))
    if not isinstance(data, dict):
        raise InstallFailure("json: cannot unmarshal into the plugin info")
    got = data.get("name", name)
    if got != name:
        raise InstallFailure(f"invalid plugin, expect name '{name}' but got '{got}'")
    if not data.get("language"):
        raise InstallFailure("invalid plugin, missing language")
    if not data.get("executable"):
        raise InstallFailure("invalid plugin, missing executable")
    count = sum(len(data.get(k) or []) for k in ("sources", "sinks", "functions"))
    if count == 0:
        raise InstallFailure("invalid plugin, must define at least one source, sink or function")
    if data["language"] not in ("go", "python"):
        raise InstallFailure(f"invalid plugin, language '{data['language']}' is not supported")
    return data


def install(zip_path: Path, name: str, root: Path) -> dict[str, object]:
    """Unpack ``zip_path`` as eKuiper would into ``root/{plugins/portable,etc,data}``.

    Raises ``InstallFailure`` with the host's reason; returns the manifest.
    """
    plugin_dir = root / "plugins" / "portable" / name
    etc, data_dir = root / "etc", root / "data"
    for kind in ("sources", "sinks", "functions"):
        # These folders exist in every eKuiper installation.
        (etc / kind).mkdir(parents=True, exist_ok=True)
        (data_dir / kind).mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as zf:
        manifest = read_manifest(zf, name)
        required = [f"{name}.json", str(manifest["executable"])]
        required += [f"sources/{s}.yaml" for s in manifest.get("sources") or []]  # type: ignore
        installed = set()
        plugin_dir.mkdir(parents=True, exist_ok=True)
        for info in zf.infolist():
            cleaned = _clean(info.filename)
            if cleaned.startswith(("/", "../")) or cleaned == "..":
                raise InstallFailure(f"path escapes the plugin folder: {info.filename}")
            targets = ([etc, data_dir] if cleaned.startswith(SPECIAL) else [plugin_dir])
            for base in targets:
                _unzip_one(zf, info, base, cleaned)
            if not info.is_dir():
                installed.add(cleaned)
        for rf in required:
            if rf not in installed:
                raise InstallFailure(f"missing {rf}")
    return manifest


def _unzip_one(zf: zipfile.ZipFile, info: zipfile.ZipInfo, base: Path, name: str) -> None:
    if info.is_dir():
        (base / name).mkdir(exist_ok=True)  # single level: the parent must exist
        return
    parent = posixpath.dirname(name)
    if parent:
        try:
            (base / parent).mkdir(exist_ok=True)
        except FileNotFoundError:
            raise InstallFailure(f"mkdir {parent}: no such file or directory") from None
    target = base / name
    target.write_bytes(zf.read(info))
    mode = (info.external_attr >> 16) & 0o777 if info.create_system == 3 else 0o644
    os.chmod(target, mode or 0o644)


def check(zip_path: Path, name: str, scratch: Path) -> list[str]:
    """Every rule a zip the SDK writes must meet, beyond eKuiper's (deterministic metadata,
    executable bit, no stray folders); an empty list when the zip is right."""
    problems: list[str] = []
    try:
        install(zip_path, name, scratch)
    except InstallFailure as exc:
        return [str(exc)]
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        if names != sorted(names):
            problems.append("entries are not sorted")
        manifest = json.loads(zf.read(f"{name}.json"))
        for info in zf.infolist():
            if info.date_time != (1980, 1, 1, 0, 0, 0):
                problems.append(f"{info.filename}: time {info.date_time} is not fixed")
            if info.create_system != 3:
                problems.append(f"{info.filename}: no Unix mode")
            mode = info.external_attr >> 16
            if info.is_dir():
                if not stat.S_ISDIR(mode):
                    problems.append(f"{info.filename}: directory without directory mode")
                continue
            if stat.S_IMODE(mode) not in (0o644, 0o755):
                problems.append(f"{info.filename}: mode {oct(mode)} is not normalised")
            if info.filename == manifest["executable"] and not mode & 0o100:
                problems.append(f"{info.filename}: the executable is not executable")
            if info.filename.startswith(SPECIAL) and info.filename.count("/") != 1:
                problems.append(f"{info.filename}: nested below its kind folder")
        for kind in ("sources/", "sinks/", "functions/"):
            if kind in names:
                problems.append(f"{kind}: a directory entry leaves an empty folder in the plugin")
    return problems


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below ``root``: relative path -> (content, permission bits)."""
    out: dict[str, tuple[bytes, int]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[path.relative_to(root).as_posix()] = (path.read_bytes(),
                                                      stat.S_IMODE(path.stat().st_mode))
    return out


def find_plugin_name(zip_path: Path) -> str | None:
    with zipfile.ZipFile(zip_path) as zf:
        roots = [n[:-5] for n in zf.namelist() if "/" not in n and n.endswith(".json")]
    return roots[0] if len(roots) == 1 else None
