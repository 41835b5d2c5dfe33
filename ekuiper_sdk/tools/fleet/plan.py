"""Before a rollout changes anything: what each server runs and what will happen to it.

Every server is read once (:func:`inspect`): reachable or not, the plugin's version, and
whether the release history knows that version's zip. Then each server gets its part:

* ``skip``: it already runs this exact zip (the same version, and the history says the
  same content hash went there and passed its check: a server whose check was cut short
  is changed and checked again);
* ``change``: it will be updated (or the plugin installed), and rolling back means the
  zip the history holds for its current version, or deleting the plugin when it had none;
* ``unreachable``: it did not answer (the rollout stops before any change unless
  ``--skip-unreachable``);
* ``refuse``: its version's zip is unknown, so it could not be rolled back (unless
  ``--previous ZIP`` brings that zip or ``--no-rollback`` accepts it).

Example::

    plans = inspect(servers, release, history, width=10, stop=threading.Event())
    print([p.action for p in plans])
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..rest import RestClient
from .health import Snapshot, snapshot
from .inventory import Server
from .parallel import run_all
from .releases import Release, ReleaseHistory

SKIP, CHANGE, UNREACHABLE, REFUSE = "skip", "change", "unreachable", "refuse"


@dataclass
class Plan:
    """One server's part in the rollout, and where it stands as the rollout goes."""

    server: Server
    before: Snapshot
    action: str = CHANGE
    #: The zip to go back to; None with ``before.installed`` False means "delete it".
    previous: Release | None = None
    rollback: bool = True
    reason: str = ""
    #: Where the server stands: planned, skipped, unreachable, updated, installed,
    #: checked, failed, rolled back, rollback failed, left (with --no-rollback),
    #: not started, interrupted.
    state: str = "planned"
    detail: str = ""
    changed: bool = False
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def before_text(self) -> str:
        if not self.before.reachable:
            return "?"
        return self.before.version or "(no version)" if self.before.installed else "absent"

    def to_dict(self) -> dict[str, Any]:
        return {"server": self.server.url, "name": self.server.name or None,
                "action": self.action, "state": self.state, "detail": self.detail or None,
                "before": self.before.to_dict(),
                "previous": ({"version": self.previous.version, "sha256": self.previous.sha256}
                             if self.previous else None),
                "steps": self.steps}


def client_for(server: Server, timeout: float) -> RestClient:
    """A REST client of the server, with its own token and the per-call timeout."""
    return RestClient(server.url, token=server.token, timeout=timeout)


def decide(server: Server, before: Snapshot, release: Release, history: ReleaseHistory,
           previous: Release | None, no_rollback: bool) -> Plan:
    """The server's part, from what it runs and what the history knows."""
    plan = Plan(server, before, rollback=not no_rollback)
    if not before.reachable:
        plan.action, plan.reason = UNREACHABLE, before.error
        return plan
    if not before.installed:
        plan.reason = "not installed: rolling back deletes it"
        return plan
    last = history.last(server.url, release.plugin)
    if (before.version == release.version and last is not None and last.action == "checked"
            and last.version == release.version and last.sha256 == release.sha256):
        plan.action, plan.reason = SKIP, "already runs this zip"
        return plan
    known = history.find(server.url, release.plugin, before.version)
    if known is None and previous is not None and previous.version == before.version:
        known = previous
    plan.previous = known
    if known is None and not no_rollback:
        plan.action = REFUSE
        plan.reason = (f"runs {release.plugin} {before.version or '(no version)'}, whose zip "
                       "the release history does not hold")
    return plan


def inspect(servers: Sequence[Server], release: Release, history: ReleaseHistory, *,
            width: int, stop: threading.Event, timeout: float,
            previous: Release | None = None, no_rollback: bool = False) -> list[Plan]:
    """Read every server (``width`` at a time) and decide each one's part."""

    def look(server: Server) -> Plan:
        before = snapshot(client_for(server, timeout), release.plugin)
        return decide(server, before, release, history, previous, no_rollback)

    plans = run_all(servers, look, width=width, stop=stop)
    return plans
