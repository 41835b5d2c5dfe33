"""``ekuiper-plugin rollout ZIP --fleet FILE``: a plugin to many servers, carefully.

The canary servers (the first ``canary`` servers that need the change, in the fleet
file's order) go first, together; then the others in waves of at most ``parallel``. Each
changed server is watched for a settle window (:func:`health.settle`). When one fails,
no new wave starts, the servers of the current wave finish their step, and every server
changed in this rollout goes back to the zip it had (or loses the plugin it did not
have), each watched the same way. eKuiper's update is "delete, then install", so a zip
that fails to install leaves the server without the plugin: going back installs the old
zip again.

The outcome is one of :data:`OUTCOMES`; the command's exit code says which.

Example::

    result = rollout(servers, Release.of_zip("demo.zip"), history, Options(parallel=10))
    print(result.outcome, [p.state for p in result.plans])
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Callable

from ...errors import PackagingError, RestError
from ..rest import install_zip
from .health import Snapshot, settle, snapshot, taking_records
from .inventory import Server
from .parallel import Interrupted, patient, run_all
from .plan import CHANGE, REFUSE, SKIP, UNREACHABLE, Plan, client_for, inspect
from .releases import Release, ReleaseHistory

#: outcome -> exit code. 0: every server runs the zip; 1: refused before any change;
#: 3: a server failed its check and every changed server is back and healthy; 4: a
#: server failed and some changed server is not back (its rollback failed, or
#: --no-rollback); 130: interrupted.
OUTCOMES = {"done": 0, "refused": 1, "rolled back": 3, "not rolled back": 4,
            "interrupted": 130}


@dataclass
class Options:
    """How the rollout goes; the command line's flags."""

    canary: int = 1
    parallel: int = 5
    settle: float = 30.0
    #: Seconds an install or update may take (it waits for the plugin's start).
    timeout: float = 120.0
    #: Seconds any other call may take: reading a server, each look of a settle window.
    read_timeout: float = 10.0
    skip_unreachable: bool = False
    previous: Release | None = None
    no_rollback: bool = False
    via: str = "auto"
    #: Seconds of watching the rules before a change, to learn which take records.
    observe: float = 2.0


@dataclass
class Result:
    """What the rollout did: the outcome, each server's plan and state, the waves."""

    outcome: str
    plans: list[Plan]
    release: Release
    waves: list[list[str]] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return OUTCOMES[self.outcome]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.outcome == "done", "outcome": self.outcome,
                "exit": self.exit_code, "message": self.message,
                "plugin": self.release.plugin, "version": self.release.version,
                "sha256": self.release.sha256, "seconds": round(self.seconds, 3),
                "waves": self.waves, "servers": [p.to_dict() for p in self.plans]}


class Reporter:
    """One line per server per step, whole lines only, from any thread."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        # Reentrant: a Ctrl-C handler prints from the main thread, maybe inside a print.
        self.lock = threading.RLock()

    def __call__(self, plan: Plan | None, text: str) -> None:
        line = f"{plan.server.label}: {text}" if plan is not None else text
        with self.lock:
            self.out.write(line + "\n")
            self.out.flush()


class Rollout:
    """One rollout's state; :func:`rollout` runs it."""

    def __init__(self, release: Release, history: ReleaseHistory, options: Options,
                 say: Callable[[Plan | None, str], None], stop: threading.Event) -> None:
        self.release = release
        self.history = history
        self.options = options
        self.say = say
        self.stop = stop

    def _step(self, plan: Plan, name: str, ok: bool, text: str, started: float) -> None:
        seconds = time.monotonic() - started
        plan.steps.append({"step": name, "ok": ok, "detail": text,
                           "seconds": round(seconds, 3)})
        self.say(plan, f"{name} {'ok' if ok else 'FAILED'}: {text} ({seconds:.1f} s)")

    def _watch(self, plan: Plan, before: Snapshot, taking: frozenset[str],
               name: str) -> bool:
        started = time.monotonic()
        verdict = settle(client_for(plan.server, self.options.read_timeout),
                         self.release.plugin,
                         before, self.options.settle, taking=taking, stop=self.stop)
        if verdict.reason == "interrupted":
            plan.state, plan.detail = "interrupted", f"changed, {name} cut short by Ctrl-C"
            self._step(plan, name, False, "interrupted", started)
            return False
        rules = f", {len(before.rules)} rule(s) kept running" if before.rules else ""
        text = (f"{self.release.plugin} running for {self.options.settle:g} s{rules}"
                if verdict.ok else verdict.reason)
        self._step(plan, name, verdict.ok, text, started)
        if not verdict.ok:
            plan.detail = verdict.reason
        return verdict.ok

    def change(self, plan: Plan) -> Plan:
        """Update (or install) the zip on one server, then watch it; never raises."""
        try:
            return self._change(plan)
        except Exception as exc:  # noqa: BLE001 - one server's surprise must not stop the rest
            plan.changed = True   # it may have been changed: going back is the safe side
            plan.state, plan.detail = "failed", f"unexpected {type(exc).__name__}: {exc}"
            self.say(plan, f"FAILED: {plan.detail}")
            return plan

    def _change(self, plan: Plan) -> Plan:
        if self.stop.is_set():
            plan.state = "not started"
            return plan
        client = client_for(plan.server, self.options.timeout)
        reader = client_for(plan.server, self.options.read_timeout)
        # Which rules take records: two looks, at least ``observe`` seconds apart.
        wait = self.options.observe - (time.monotonic() - plan.before.at)
        if plan.before.rules and wait > 0 and self.stop.wait(wait):
            plan.state = "not started"
            return plan
        before = snapshot(reader, self.release.plugin, rule_ids=sorted(plan.before.rules)) \
            if plan.before.rules else plan.before
        taking = taking_records(plan.before, before) if plan.before.rules else frozenset()
        update = plan.before.installed
        verb = "update" if update else "install"
        started = time.monotonic()
        try:
            done = install_zip(client, self.release.path, update=update, via=self.options.via,
                               name=self.release.plugin, log=io.StringIO())
        except (RestError, PackagingError) as exc:
            # eKuiper deletes before it installs: the plugin may be gone now.
            plan.changed = True
            plan.state, plan.detail = "failed", str(exc).splitlines()[0]
            self._step(plan, verb, False, plan.detail, started)
            self._note(plan, None, f"{verb} failed")
            return plan
        plan.changed = True
        plan.state = "updated" if update else "installed"
        self._note(plan, self.release, f"{verb}d")
        self._step(plan, verb, True, f"{plan.before_text} -> {self.release.version} "
                   f"(via {done.via})", started)
        if self._watch(plan, before, taking, "check"):
            plan.state = "checked"
            # Only a checked server is skipped by a later run: one cut short is redone.
            self._note(plan, self.release, "checked")
        elif plan.state != "interrupted":
            plan.state = "failed"
        return plan

    def _note(self, plan: Plan, release: Release | None, action: str) -> None:
        """Write the server's new state to the history; a failed write is said, not fatal."""
        try:
            if release is None:
                # After a failed update the plugin may or may not be there; look.
                shot = snapshot(client_for(plan.server, self.options.read_timeout),
                                self.release.plugin, with_rules=False)
                if shot.reachable and shot.installed:
                    return  # still the old one: the history's last entry stays true
            self.history.record(plan.server.url, release, self.release.plugin, action)
        except RestError as exc:
            self.say(plan, f"history not written: {exc}")

    def back(self, plan: Plan) -> Plan:
        """Put one changed server back as it was, then watch it; never raises."""
        try:
            return self._back(plan)
        except Exception as exc:  # noqa: BLE001 - the other rollbacks must go on
            plan.state, plan.detail = "rollback failed", f"unexpected {type(exc).__name__}: {exc}"
            self.say(plan, f"rollback FAILED: {plan.detail}")
            return plan

    def _back(self, plan: Plan) -> Plan:
        client = client_for(plan.server, self.options.timeout)
        plugin = self.release.plugin
        started = time.monotonic()
        if plan.previous is not None and plan.previous.sha256 == self.release.sha256 and \
                plan.state != "failed":
            # It ran this very zip before (a run cut short had changed it): nothing to undo.
            plan.state, plan.detail = "rolled back", "it ran this zip before the rollout"
            self._step(plan, "rollback", True, "nothing to undo", started)
            return plan
        try:
            now = snapshot(client_for(plan.server, self.options.read_timeout), plugin,
                           with_rules=False)
            if not now.reachable:
                raise RestError(now.error)
            if plan.previous is None:
                if now.installed:
                    client.delete(plugin)
                self._note(plan, None, "deleted")
                plan.state, plan.detail = "rolled back", "plugin deleted, as before"
                self._step(plan, "rollback", True, "deleted (it was not installed before)",
                           started)
                return plan
            done = install_zip(client, plan.previous.path, update=now.installed,
                               via=self.options.via, name=plugin, log=io.StringIO())
        except (RestError, PackagingError) as exc:
            plan.state, plan.detail = "rollback failed", str(exc).splitlines()[0]
            self._step(plan, "rollback", False, plan.detail, started)
            return plan
        self._note(plan, plan.previous, "rolled back")
        self._step(plan, "rollback", True, f"-> {plan.previous.version} (via {done.via})",
                   started)
        reason = plan.detail
        if self._watch(plan, plan.before, frozenset(), "recheck"):
            plan.state = "rolled back"
            plan.detail = reason
            self._note(plan, plan.previous, "checked")
        elif plan.state != "interrupted":
            plan.state = "rollback failed"
        return plan


def _waves(todo: list[Plan], canary: int, parallel: int) -> list[list[Plan]]:
    """The canary set, then waves of at most ``parallel`` servers.

    >>> [len(w) for w in _waves(list(range(12)), 1, 5)]
    [1, 5, 5, 1]
    """
    waves: list[list[Plan]] = []
    first = todo[:max(0, canary)]
    if first:
        waves.append(first)
    rest = todo[len(first):]
    for i in range(0, len(rest), max(1, parallel)):
        waves.append(rest[i:i + parallel])
    return waves


def rollout(servers: Sequence[Server], release: Release, history: ReleaseHistory,
            options: Options, *, out: IO[str], stop: threading.Event | None = None) -> Result:
    """Inspect every server, refuse or go, and roll back on a failed check."""
    stop = stop or threading.Event()
    say = Reporter(out)
    started = time.monotonic()
    work = Rollout(release, history, options, say, stop)

    def interrupted() -> None:
        say(None, "interrupted: finishing the steps under way (Ctrl-C again to stop "
            "waiting)")

    def result(outcome: str, plans: list[Plan], message: str,
               waves: Sequence[list[Plan]] = ()) -> Result:
        return Result(outcome, plans, release, [[p.server.url for p in w] for w in waves],
                      message, time.monotonic() - started)

    say(None, f"rollout of {release.short} to {len(servers)} server(s)")
    try:
        plans = inspect(servers, release, history, width=max(options.parallel, 1), stop=stop,
                        timeout=options.read_timeout, previous=options.previous,
                        no_rollback=options.no_rollback)
    except KeyboardInterrupt:
        return result("interrupted", [], "interrupted while reading the servers")
    if stop.is_set():
        return result("interrupted", plans, "interrupted while reading the servers")
    for plan in plans:
        if plan.action == SKIP:
            plan.state, plan.detail = "skipped", plan.reason
        elif plan.action == UNREACHABLE:
            plan.state, plan.detail = "unreachable", plan.reason
        seen = [plan.before_text] if plan.before.reachable else []
        say(plan, f"{plan.action}: " + "; ".join(seen + ([plan.reason] if plan.reason else [])))
    unreachable = [p for p in plans if p.action == UNREACHABLE]
    refused = [p for p in plans if p.action == REFUSE]
    if unreachable and not options.skip_unreachable:
        return result("refused", plans, f"{len(unreachable)} server(s) unreachable; nothing "
                      "changed (pass --skip-unreachable to go on without them)")
    if refused:
        return result("refused", plans, f"{len(refused)} server(s) could not be rolled "
                      "back; nothing changed (pass --previous ZIP with the zip they run, "
                      "or --no-rollback)")
    todo = [p for p in plans if p.action == CHANGE]
    waves = _waves(todo, options.canary, options.parallel)
    try:
        for number, wave in enumerate(waves):
            if stop.is_set():
                break
            canary = options.canary > 0
            label = "canary" if number == 0 and canary else f"wave {number + (not canary)}"
            say(None, f"{label}: {', '.join(p.server.label for p in wave)}")
            run_all(wave, work.change, width=len(wave), stop=stop, on_interrupt=interrupted)
            if any(p.state == "failed" for p in wave):
                break
        failed = [p for p in todo if p.state == "failed"]
        if stop.is_set() and not failed:
            for p in todo:
                if p.state == "planned":
                    p.state = "not started"
            return result("interrupted", plans, "stopped by Ctrl-C; re-run the same command "
                          "to go on (the servers checked are skipped)", waves)
        if not failed:
            return result("done", plans, f"{sum(p.state == 'checked' for p in todo)} "
                          f"server(s) changed, {sum(p.state == 'skipped' for p in plans)} "
                          "skipped", waves)
        for p in todo:
            if p.state == "planned":
                p.state = "not started"
        changed = [p for p in todo if p.changed]
        first = failed[0]
        if options.no_rollback:
            for p in changed:
                if p.state == "checked":
                    p.detail = "left on the new version (--no-rollback)"
            return result("not rolled back", plans, f"{first.server.label} failed its check "
                          f"({first.detail}); --no-rollback: nothing was rolled back", waves)

        def rolling_back() -> None:
            say(None, "rolling back: it goes on to the end (Ctrl-C again to stop waiting)")

        # A rollback is not cut short by an earlier Ctrl-C, nor by a first one now.
        with patient(rolling_back):
            stop.clear()
            say(None, f"{first.server.label} failed ({first.detail}): rolling back "
                f"{len(changed)} server(s)")
            run_all(changed, work.back, width=max(options.parallel, 1), stop=stop)
        if all(p.state == "rolled back" for p in changed):
            return result("rolled back", plans, f"{first.server.label} failed its check "
                          f"({first.detail}); every changed server is back", waves)
        return result("not rolled back", plans, f"{first.server.label} failed its check "
                      f"({first.detail}); some servers are not back: see the table", waves)
    except KeyboardInterrupt as exc:
        # A second Ctrl-C in a wave (Interrupted), or one between two waves.
        for p in todo:
            if p.state == "planned":
                p.state = "not started"
        message = ("stopped waiting; steps under way may still finish on the servers"
                   if isinstance(exc, Interrupted) else "stopped by Ctrl-C between waves")
        return result("interrupted", plans, message, waves)
