"""``ekuiper-plugin fleet status [NAME] --fleet FILE``: one plugin across the fleet.

Per server: reachable or not, the plugin's version and content hash (the hash comes from
the release history, since eKuiper reports only the manifest's version: it is known when
the history's last entry for that server has the version the server reports), status and
error message, and the rules that use it with their state. The drift: the servers whose
version (and, when known on both sides, hash) differs from what most of the fleet runs.

Example::

    report = fleet_status(servers, "demo", history, width=10, timeout=10)
    print(report.majority, [row.server.label for row in report.drift])
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ...errors import RestError
from .health import Snapshot, snapshot
from .inventory import Server
from .parallel import Interrupted, run_all
from .plan import client_for
from .releases import ReleaseHistory


@dataclass
class Row:
    """One server's view of the plugin."""

    server: Server
    shot: Snapshot
    sha256: str = ""

    @property
    def key(self) -> str:
        """What the drift compares: ``absent``, ``?`` (unreachable) or the version."""
        if not self.shot.reachable:
            return "?"
        return self.shot.version or "(no version)" if self.shot.installed else "absent"

    def to_dict(self) -> dict[str, Any]:
        data = {"server": self.server.url, "name": self.server.name or None,
                "groups": list(self.server.groups)}
        data.update(self.shot.to_dict())
        data["sha256"] = self.sha256 or None
        return data


@dataclass
class FleetReport:
    """Every server's row, the version most of the fleet runs, and who differs."""

    plugin: str
    rows: list[Row]
    majority: str = ""
    majority_sha256: str = ""
    drift: list[Row] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every server answers, runs the majority's version, and none errs."""
        return not self.drift and all(r.shot.reachable and r.shot.status != "error"
                                      for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "plugin": self.plugin, "majority": {
            "version": self.majority or None, "sha256": self.majority_sha256 or None},
            "drift": [r.server.url for r in self.drift],
            "servers": [r.to_dict() for r in self.rows]}


def find_drift(rows: Sequence[Row]) -> tuple[str, str, list[Row]]:
    """The version most reachable servers run (ties: the first in the fleet's order), its
    hash when the history knows one, and the rows that differ from it.

    >>> from .health import Snapshot
    >>> rows = [Row(Server(f"http://h{i}:9081"), Snapshot(installed=True, version=v))
    ...         for i, v in enumerate(["2", "2", "1"])]
    >>> version, _, drift = find_drift(rows)
    >>> version, [r.server.url for r in drift]
    ('2', ['http://h2:9081'])
    """
    seen = [r for r in rows if r.shot.reachable]
    if not seen:
        return "", "", []
    counts = Counter(r.key for r in seen)
    top = max(counts.values())
    majority = next(r.key for r in seen if counts[r.key] == top)
    hashes = Counter(r.sha256 for r in seen if r.key == majority and r.sha256)
    sha = hashes.most_common(1)[0][0] if hashes else ""
    drift = [r for r in seen if r.key != majority or (sha and r.sha256 and r.sha256 != sha)]
    return majority, sha, drift


def _give_up() -> None:
    # A status changes nothing: Ctrl-C ends it at once rather than printing part of a fleet.
    raise Interrupted()


def fleet_status(servers: Sequence[Server], plugin: str, history: ReleaseHistory, *,
                 width: int = 10, timeout: float = 10.0,
                 stop: threading.Event | None = None) -> FleetReport:
    """Read every server, ``width`` at a time, each call bounded by ``timeout``."""

    def look(server: Server) -> Row:
        shot = snapshot(client_for(server, timeout), plugin)
        row = Row(server, shot)
        if shot.installed:
            try:
                last = history.last(server.url, plugin)
            except RestError:  # a broken history must not hide the fleet's state
                last = None
            if last is not None and not last.absent and last.version == shot.version:
                row.sha256 = last.sha256
        return row

    rows = run_all(servers, look, width=width, stop=stop or threading.Event(),
                   on_interrupt=_give_up)
    majority, sha, drift = find_drift(rows)
    return FleetReport(plugin, rows, majority, sha, drift)


def plugins_on(servers: Sequence[Server], *, width: int, timeout: float) -> list[str]:
    """Every portable plugin any reachable server has, sorted (for a status without NAME)."""

    def names(server: Server) -> set[str]:
        try:
            return {str(p.get("name")) for p in client_for(server, timeout).list_plugins()}
        except RestError:  # an unreachable server shows up in its row
            return set()

    found: set[str] = set()
    for group in run_all(servers, names, width=width, stop=threading.Event(),
                         on_interrupt=_give_up):
        found |= group
    return sorted(found)
