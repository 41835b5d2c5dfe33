"""What one server says about a plugin, and the settle-window health gate.

A :class:`Snapshot` is read over REST: the plugin's manifest (``GET
/plugins/portables/<name>``), its status, and the rules that use it with their state and
how many records they have taken. A rule uses the plugin when eKuiper counts it in the
status's ``refCount`` (eKuiper's source says it does so for the rules that start one of
the plugin's sources or sinks; functions are shared and counted under no rule) or when its
SQL or actions name one of the plugin's symbols (``usage.rules_using``).

:func:`settle` watches a server after a change for a window of seconds: the plugin must
be ``running`` with no error message at every look, every rule that ran before must still
run, and a rule that was taking records before must have taken more by the end.

Example::

    before = snapshot(RestClient(url), "demo")
    verdict = settle(RestClient(url), "demo", before, seconds=30)
    print(verdict.ok, verdict.reason)
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import RestError
from ..manifest import Manifest
from ..rest import RestClient
from ..usage import rules_using


@dataclass(frozen=True)
class RuleState:
    """A rule's state and the records its nodes have taken in so far."""

    id: str
    status: str
    records: int

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "records": self.records}


@dataclass
class Snapshot:
    """A plugin on one server at one moment; ``error`` set when the server did not answer."""

    error: str = ""
    installed: bool = False
    version: str = ""
    status: str = ""
    err_msg: str = ""
    rules: dict[str, RuleState] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None
    at: float = field(default_factory=time.monotonic)

    @property
    def reachable(self) -> bool:
        return not self.error

    def to_dict(self) -> dict[str, Any]:
        return {"reachable": self.reachable, "error": self.error or None,
                "installed": self.installed, "version": self.version if self.installed
                else None, "status": self.status or None, "errMsg": self.err_msg or None,
                "rules": [r.to_dict() for r in self.rules.values()]}


def records_taken(metrics: Mapping[str, Any]) -> int:
    """The sum of a rule's ``*_records_in_total`` counters (sources, operators, sinks).

    >>> records_taken({"status": "running", "source_s_0_records_in_total": 5,
    ...                "sink_k_0_0_records_in_total": 4, "op_2_project_0_records_out_total": 4})
    9
    """
    total = 0
    for key, value in metrics.items():
        if key.endswith("_records_in_total") and isinstance(value, (int, float)):
            total += int(value)
    return total


def rule_state(client: RestClient, rule_id: str) -> RuleState:
    """``GET /rules/<id>/status``; a rule that is gone reads as status ``deleted``."""
    try:
        data = client.request("GET", "/rules/" + urllib.parse.quote(rule_id, safe="") +
                              "/status").json()
    except RestError as exc:
        if exc.status == 404:
            return RuleState(rule_id, "deleted", 0)
        raise
    data = data if isinstance(data, dict) else {}
    return RuleState(rule_id, str(data.get("status", "")), records_taken(data))


def snapshot(client: RestClient, plugin: str, *, with_rules: bool = True,
             rule_ids: list[str] | None = None) -> Snapshot:
    """Read the plugin's state on the server; never raises for an unreachable server.

    ``rule_ids`` reads exactly those rules (a later look at the rules found before).
    """
    shot = Snapshot()
    try:
        try:
            desc = client.describe(plugin)
        except RestError as exc:
            if exc.status != 404:
                raise
            desc = None
        if desc is not None:
            shot.installed = True
            shot.manifest = desc
            shot.version = str(desc.get("version") or "")
        status: dict[str, Any] = {}
        if shot.installed:
            try:
                status = client.status(plugin)
            except RestError as exc:
                if exc.status != 404:
                    raise
        shot.status = str(status.get("status") or "")
        shot.err_msg = str(status.get("errMsg") or "")
        if not with_rules:
            return shot
        if rule_ids is None:
            ids = set((status.get("refCount") or {}).keys())
            if desc is not None:
                ids.update(rid for rid, _ in rules_using(client, Manifest.from_dict(desc,
                                                                                    plugin)))
            rule_ids = sorted(ids)
        for rid in rule_ids:
            shot.rules[rid] = rule_state(client, rid)
    except RestError as exc:
        shot.error = exc.message
    except (ValueError, TypeError, AttributeError) as exc:
        # A 200 answer that is not the JSON eKuiper sends: some other server.
        shot.error = (f"{client.server} answered with something other than eKuiper's JSON "
                      f"({type(exc).__name__}: {exc}); is it eKuiper's REST API?")
    shot.at = time.monotonic()
    return shot


@dataclass(frozen=True)
class Verdict:
    """The health gate's answer: ok, or the first reason it failed."""

    ok: bool
    reason: str = ""
    looks: int = 0


def _problem(before: Snapshot, now: Snapshot) -> str:
    if not now.reachable:
        return f"server stopped answering ({now.error})"
    if not now.installed:
        return "plugin is not installed"
    if now.status != "running" or now.err_msg:
        return f"plugin status {now.status or 'unknown'}" + (f": {now.err_msg}"
                                                             if now.err_msg else "")
    for rid, was in before.rules.items():
        rule = now.rules.get(rid)
        if was.status == "running" and (rule is None or rule.status != "running"):
            return f"rule {rid} is {rule.status if rule else 'gone'} (was running)"
    return ""


def settle(client: RestClient, plugin: str, before: Snapshot, seconds: float, *,
           taking: frozenset[str] = frozenset(), stop: threading.Event | None = None,
           interval: float | None = None) -> Verdict:
    """Watch the server for ``seconds`` after a change (see the module's docstring).

    ``taking``: the rules that were taking records before the change; each must take more
    during the window. ``stop`` set ends the watch early with ``reason="interrupted"``.
    """
    stop = stop or threading.Event()
    step = interval if interval is not None else max(0.05, min(1.0, seconds / 5))
    rule_ids = sorted(before.rules)
    first = snapshot(client, plugin, rule_ids=rule_ids)
    looks = 1
    end = time.monotonic() + seconds
    now = first
    while True:
        problem = _problem(before, now)
        if problem:
            return Verdict(False, problem, looks)
        left = end - time.monotonic()
        if left <= 0:
            break
        if stop.wait(min(step, left)):
            return Verdict(False, "interrupted", looks)
        now = snapshot(client, plugin, rule_ids=rule_ids)
        looks += 1
    for rid in sorted(taking):
        start = first.rules.get(rid)
        last = now.rules.get(rid)
        if start is not None and last is not None and last.records <= start.records:
            return Verdict(False, f"rule {rid} took no records in {seconds:g} s (it was "
                           "taking them before)", looks)
    return Verdict(True, "", looks)


def taking_records(earlier: Snapshot, later: Snapshot) -> frozenset[str]:
    """The running rules whose record count grew from ``earlier`` to ``later``.

    >>> a = Snapshot(rules={"r": RuleState("r", "running", 3)})
    >>> b = Snapshot(rules={"r": RuleState("r", "running", 5)})
    >>> sorted(taking_records(a, b))
    ['r']
    """
    return frozenset(rid for rid, rule in later.rules.items()
                     if rule.status == "running" and rid in earlier.rules
                     and rule.records > earlier.rules[rid].records)
