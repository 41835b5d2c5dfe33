"""The release history: which zip went to which server, and the zips themselves.

eKuiper keeps no copy of an installed zip and reports only the manifest's version, so a
rollback needs the previous zip from somewhere else. The history is a folder:

* ``zips/<plugin>/<version>-<sha256 prefix>.zip``: every zip rolled out (or given with
  ``--previous``), under a name that says what it is;
* ``log.jsonl``: one JSON line per change to a server, appended, never rewritten, so that
  two people sharing the folder in a repository merge by keeping both sides' lines.

The last line for a server and a plugin says what that server runs: version, content hash,
zip (or ``"absent"`` when the plugin was deleted). The default folder is under the user's
cache (``$XDG_CACHE_HOME`` or ``~/.cache``)/``ekuiper-sdk/releases``; ``--releases DIR``
shares one.

Example::

    >>> import tempfile
    >>> h = ReleaseHistory(Path(tempfile.mkdtemp()))
    >>> h.last("http://10.0.0.5:9081", "demo") is None
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import RestError
from ..manifest import read_zip_manifest


def default_folder() -> Path:
    """``$XDG_CACHE_HOME/ekuiper-sdk/releases``, else ``~/.cache/ekuiper-sdk/releases``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ekuiper-sdk" / "releases"


@dataclass(frozen=True)
class Release:
    """One zip: the plugin, its version, and the sha256 of the file.

    >>> Release("demo", "1.2", "ab" * 32, Path("demo.zip")).short
    'demo 1.2 (abababababab)'
    """

    plugin: str
    version: str
    sha256: str
    path: Path

    @property
    def short(self) -> str:
        return f"{self.plugin} {self.version} ({self.sha256[:12]})"

    @classmethod
    def of_zip(cls, path: str | Path, name: str | None = None) -> Release:
        """The release a zip is (its root manifest checked)."""
        path = Path(path)
        manifest = read_zip_manifest(path, name)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return cls(manifest.name, manifest.version, digest, path)


@dataclass(frozen=True)
class Entry:
    """A line of the log: what a server ran after a change."""

    server: str
    plugin: str
    version: str
    sha256: str
    zip: str            # relative to the history folder; "" when absent
    action: str         # installed, updated, checked, rolled back, deleted, ...
    at: float

    @property
    def absent(self) -> bool:
        return not self.zip


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text) or "_"


class ReleaseHistory:
    """The folder; safe to use from the rollout's threads (one lock for the log)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.log_path = self.folder / "log.jsonl"
        self._lock = threading.Lock()

    def _entries(self) -> list[Entry]:
        try:
            text = self.log_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise RestError(f"cannot read {self.log_path} ({exc.strerror})",
                            hint="pass another --releases DIR") from None
        entries = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                entries.append(Entry(**{k: data[k] for k in Entry.__dataclass_fields__}))
            except (ValueError, KeyError, TypeError):
                raise RestError(f"{self.log_path}:{number} is not a release entry",
                                hint="remove or fix that line (a merge conflict?)") from None
        return entries

    def last(self, server: str, plugin: str) -> Entry | None:
        """The latest entry for this server and plugin, or None."""
        with self._lock:
            found = [e for e in self._entries() if e.server == server and e.plugin == plugin]
        return found[-1] if found else None  # the log's order is the order of changes

    def store(self, release: Release) -> Path:
        """Copy the zip into ``zips/`` (once); its path relative to the folder."""
        rel = Path("zips") / _safe(release.plugin) / \
            f"{_safe(release.version) or 'noversion'}-{release.sha256[:16]}.zip"
        target = self.folder / rel
        if not target.is_file():
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_suffix(".part")
                shutil.copyfile(release.path, tmp)
                tmp.replace(target)
            except OSError as exc:
                raise RestError(f"cannot write {target} ({exc.strerror})",
                                hint="pass a writable --releases DIR") from None
        return rel

    def find(self, server: str, plugin: str, version: str) -> Release | None:
        """The zip this server ran at ``version``, else the latest stored zip of that
        version of the plugin (any server's), else None."""
        with self._lock:
            entries = [e for e in self._entries() if e.plugin == plugin and e.zip
                       and e.version == version]
        mine = [e for e in entries if e.server == server]
        for group in (mine, entries):
            for entry in reversed(group):
                path = self.folder / entry.zip
                if path.is_file():
                    return Release(plugin, version, entry.sha256, path)
        return None

    def record(self, server: str, release: Release | None, plugin: str, action: str) -> None:
        """Append what ``server`` runs now: ``release``, or nothing (``None``: deleted)."""
        rel = str(self.store(release)) if release is not None else ""
        entry: dict[str, Any] = {
            "server": server, "plugin": plugin,
            "version": release.version if release else "",
            "sha256": release.sha256 if release else "", "zip": rel, "action": action,
            "at": time.time()}
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self._lock:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                with open(self.log_path, "a", encoding="utf-8") as f:
                    f.write(line)
            except OSError as exc:
                raise RestError(f"cannot write {self.log_path} ({exc.strerror})",
                                hint="pass a writable --releases DIR") from None
