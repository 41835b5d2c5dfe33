"""The plugin's own view of its health, in a small JSON file beside ``ctx.state``.

eKuiper's status endpoint knows only whether the process it started runs; a restarted
worker, a crash loop, a call stuck in plugin code or a source thread that never ended are
the plugin's to tell. The process eKuiper started (the plugin in one process, or its
supervisor) writes ``status-<plugin>.json`` in the state folder (``state.state_dir``,
eKuiper's data folder when the plugin is installed there), and a supervised worker writes
what only it sees into ``status-<plugin>-worker.json`` beside it. Each is rewritten whole
on a change only (never periodically), through a temporary file and a rename, so a reader
sees an old or a new file, never a torn one. ``ekuiper-plugin status`` reads both when it
runs where it can reach that folder.

Standard library only, so the command-line tools can read it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

log = logging.getLogger("ekuiper_sdk")

#: Where eKuiper's data folder is, for a reader on the server: the folder of its images.
COMMON_DATA_DIRS = ("/kuiper/data", "/usr/local/kuiper/data")
#: The state folder's name under eKuiper's data folder (``state.EKUIPER_DATA_SUBDIR``).
STATE_SUBDIR = "ekuiper-sdk-state"


def status_path(folder: str, plugin: str, part: str = "") -> str:
    """The status file of ``plugin`` in the state folder ``folder``.

    >>> status_path("/data/ekuiper-sdk-state", "pysam")
    '/data/ekuiper-sdk-state/status-pysam.json'
    >>> status_path("/s", "pysam", "worker")
    '/s/status-pysam-worker.json'
    """
    return os.path.join(folder, f"status-{plugin}{'-' + part if part else ''}.json")


class StatusFile:
    """One process's part of the status: :meth:`update` merges keys and rewrites the file.

    A write that fails (a read-only folder) is logged once and given up: the status is a
    convenience, never a reason for the plugin to stop.

    >>> import tempfile
    >>> status = StatusFile(status_path(tempfile.mkdtemp(), "demo"))
    >>> status.update(restarts=1); status.read()["restarts"]
    1
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._data: dict[str, Any] = {}
        self._failed = False

    def update(self, **changes: Any) -> None:
        with self._lock:
            if self._failed:
                return
            self._data.update(changes)
            self._data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            blob = json.dumps(self._data, sort_keys=True).encode()
            temp = f"{self.path}.{os.getpid()}.tmp"
            try:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                with open(temp, "wb") as out:
                    out.write(blob)
                os.replace(temp, self.path)
            except OSError as exc:
                self._failed = True
                log.warning("cannot write the plugin's status file %s: %s; ekuiper-plugin "
                            "status will not show restarts and hung calls", self.path,
                            exc.strerror or exc)

    def read(self) -> dict[str, Any]:
        return read_status(self.path) or {}


def read_status(path: str) -> dict[str, Any] | None:
    """A status file's content, or None when it is missing or unreadable."""
    try:
        with open(path, "rb") as source:
            data = json.loads(source.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def find_status(plugin: str, data_dir: str | None = None) -> tuple[str, dict[str, Any]] | None:
    """The plugin's status, merged from its files, and where it was found; None when no
    file is readable from here.

    ``data_dir`` is eKuiper's data folder; else ``EKUIPER_SDK_STATE_DIR``, then the data
    folders of eKuiper's images are tried.
    """
    folders = []
    if data_dir:
        folders.append(os.path.join(data_dir, STATE_SUBDIR))
        folders.append(data_dir)  # the state folder itself, given directly
    env = os.environ.get("EKUIPER_SDK_STATE_DIR")
    if env:
        folders.append(env)
    folders += [os.path.join(d, STATE_SUBDIR) for d in COMMON_DATA_DIRS]
    for folder in folders:
        main = read_status(status_path(folder, plugin))
        if main is None:
            continue
        worker = read_status(status_path(folder, plugin, "worker")) or {}
        merged = dict(main)
        for key, value in worker.items():
            if key not in ("updated", "pid"):
                merged.setdefault(key, value)
        if worker:
            merged["worker"] = worker
        return status_path(folder, plugin), merged
    return None


def describe(status: dict[str, Any]) -> str:
    """One line of what the status says.

    >>> describe({"mode": "supervised", "restarts": 2, "last_cause": "exit code 3",
    ...           "hung_calls": 1, "lingering_sources": 0, "crash_loop": False})
    'supervised, 2 restarts (last: exit code 3), 1 hung call, 0 lingering source threads'
    """
    parts = [str(status.get("mode", "?"))]
    if status.get("mode") == "supervised":
        restarts = int(status.get("restarts", 0))
        text = f"{restarts} restart{'s' if restarts != 1 else ''}"
        if status.get("last_cause"):
            text += f" (last: {status['last_cause']})"
        parts.append(text)
        if status.get("crash_loop"):
            parts.append(f"crash loop: {status.get('deaths_in_a_row')} deaths in a row")
    hung = int(status.get("hung_calls", 0))
    parts.append(f"{hung} hung call{'s' if hung != 1 else ''}")
    stuck = status.get("stuck_now")
    if stuck:
        parts.append("stuck now: " + "; ".join(map(str, stuck if isinstance(stuck, list)
                                                    else [stuck])))
    lingering = int(status.get("lingering_sources", 0))
    parts.append(f"{lingering} lingering source thread{'s' if lingering != 1 else ''}")
    return ", ".join(parts)
