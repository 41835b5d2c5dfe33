"""The final tables a person reads: a rollout's outcome and a fleet's status.

Example::

    >>> print(table(["server", "state"], [["gw-1", "checked"], ["gw-22", "skipped"]]))
    server  state
    gw-1    checked
    gw-22   skipped
"""

from __future__ import annotations

from collections.abc import Sequence

from .rollout import Result
from .status import FleetReport


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = []
    for row in [head, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths)] + [str(row[-1])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def rollout_table(result: Result) -> str:
    """Every server: version before, version now as far as the rollout knows, state."""
    rows = []
    for plan in result.plans:
        if plan.state in ("checked", "skipped") or (
                plan.state in ("failed", "interrupted") and plan.changed):
            # A failed update may have left the plugin deleted: the table says "?" then.
            now = result.release.version if plan.state != "failed" or \
                plan.steps[-1]["step"] == "check" else "?"
        elif plan.state == "rolled back":
            now = plan.previous.version if plan.previous else "absent"
        elif plan.state == "rollback failed":
            now = "?"
        else:
            now = plan.before_text
        rows.append([plan.server.label, plan.before_text, now, plan.state, plan.detail])
    summary = f"{result.outcome}: {result.message} ({result.seconds:.1f} s)"
    return table(["server", "before", "now", "state", "detail"], rows) + "\n" + summary


def status_table(report: FleetReport) -> str:
    """Every server's version, hash, status and rules; then the drift line."""
    rows = []
    for row in report.rows:
        shot = row.shot
        if not shot.reachable:
            rows.append([row.server.label, "unreachable", "", "", shot.error])
            continue
        rules = ", ".join(f"{r.id} ({r.status})" for r in shot.rules.values()) or "-"
        status = shot.status + (f": {shot.err_msg}" if shot.err_msg else "") \
            if shot.installed else "-"
        rows.append([row.server.label, row.key, row.sha256[:12] or "-", status, rules])
    text = table(["server", "version", "sha256", "status", "rules"], rows)
    if not report.majority:
        return text + f"\n{report.plugin}: no server answered"
    most = report.majority + (f" ({report.majority_sha256[:12]})"
                              if report.majority_sha256 else "")
    if report.drift:
        drift = ", ".join(f"{r.server.label} ({r.key})" for r in report.drift)
        return text + f"\n{report.plugin}: most servers run {most}; drift: {drift}"
    return text + f"\n{report.plugin}: every server that answered runs {most}"
