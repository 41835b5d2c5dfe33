"""``ekuiper-plugin record``: what a plugin's symbols receive on a running eKuiper, written
to a fixture file (:mod:`.fixture`) that ``ekuiper_sdk.testing`` replays.

For each rule that uses the plugin, for the length of the recording only:

- beside each action of the plugin's sink, an action of the recorder plugin's sink
  (:mod:`.recorder_plugin`) with the same properties: it gets the frames the plugin's sink
  gets, framed the same way;
- each call of the plugin's functions in the rule's SQL is wrapped by the recorder's two
  functions (:func:`.sql_calls.wrap_calls`), which pass the result through unchanged and
  send the arguments and result here;
- for each stream of the plugin's sources the rule reads, a rule of the recording's own,
  ``SELECT * FROM <stream>``, sends what the source emits (for a stream that is not
  shared, that rule's own instance of the source, with the stream's configuration).

Updating a rule restarts it (eKuiper stops and starts a rule it updates), so the rule is
restarted once when the recording begins and once when it ends. When the recording ends,
also on Ctrl-C, SIGTERM or an error, every rule gets its definition back, the recording's
rules are deleted and the recorder plugin is removed when the recording installed it.
"""

from __future__ import annotations

import argparse
import io
import json
import queue
import random
import re
import signal
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import PackagingError, RestError
from . import rest
from .fixture import FixtureWriter, frame_fields, frame_records, framing
from .recorder_plugin import ADDRESS_KEY, TAG_KEY, Listener, recorder_name, write_recorder_plugin
from .sql_calls import wrap_calls

#: How long the recording keeps reading after the rules are restored: frames already on
#: their way are kept.
DRAIN_SECONDS = 1.0


class RecordError(RuntimeError):
    """A recording that cannot start or run: one line, what and the fix."""


@dataclass
class Tap:
    """One place the recording listens to, and how many records it has had."""

    kind: str                    # "sink", "call" or "source"
    info: dict[str, Any]
    records: int = 0


@dataclass
class RulePatch:
    """A user's rule, as it was and as it runs during the recording."""

    rule_id: str
    original: dict[str, Any]
    patched: dict[str, Any]
    applied: bool = False


@dataclass
class ServerState:
    """What a recording must leave as it found: rules (and their definitions), streams,
    plugins."""

    rules: dict[str, str]
    definitions: dict[str, Any]
    streams: list[str]
    plugins: list[str]

    def differences(self, other: ServerState) -> list[str]:
        found = []
        for what in ("rules", "streams", "plugins"):
            if getattr(self, what) != getattr(other, what):
                found.append(f"{what}: {getattr(self, what)} before, {getattr(other, what)} "
                             f"after")
        for rule, definition in self.definitions.items():
            if other.definitions.get(rule) != definition:
                found.append(f"rule {rule}'s definition changed")
        return found


def server_state(client: rest.RestClient, rules: Sequence[str] = ()) -> ServerState:
    """The server's rules (id: status), the definitions of ``rules``, streams, plugins."""
    listed = client.request("GET", "/rules").json() or []
    return ServerState(
        rules={str(r["id"]): str(r.get("status")) for r in listed},
        definitions={r: client.request("GET", f"/rules/{r}").json() for r in rules},
        streams=sorted(client.request("GET", "/streams").json() or []),
        plugins=sorted(str(p.get("name")) for p in client.list_plugins()))


@dataclass
class Recording:
    """One recording of ``plugin`` on the server ``client`` talks to."""

    client: rest.RestClient
    plugin: str
    out: Path
    log: IO[str]
    rules: Sequence[str] = ()
    python_version: str = "3.12"
    vendor: bool = True
    listen: str = "127.0.0.1"
    advertise: str | None = None
    aggregates: Sequence[str] = ()
    taps: dict[str, Tap] = field(default_factory=dict)
    patches: list[RulePatch] = field(default_factory=list)
    added_rules: list[str] = field(default_factory=list)
    installed: str | None = None
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        port = urllib.parse.urlsplit(self.client.server).port or 80
        self.recorder = recorder_name(port)
        self.listener: Listener | None = None
        self._pending: dict[str, tuple[str, list[Any]]] = {}
        self._failed: list[tuple[str, list[Any]]] = []
        #: The aggregates' call sites, and the call each has open: its arguments, or None
        #: until the aggregate-side function describes them (never, for an empty group).
        self._groups: dict[str, int] = {}     # site: the call's number of arguments
        self._open: dict[str, list[Any] | None] = {}

    # -- what to record -----------------------------------------------------------

    def plan(self) -> list[str]:
        """Find the rules that use the plugin and prepare their recording; the lines that
        say what will be recorded."""
        try:
            described = self.client.describe(self.plugin)
        except RestError as exc:
            raise RecordError(f"plugin {self.plugin} on {self.client.server}: {exc.message}; "
                              f"ekuiper-plugin list shows the installed plugins") from None
        sinks = set(described.get("sinks") or [])
        functions = set(described.get("functions") or [])
        sources = set(described.get("sources") or [])
        wanted = list(self.rules) or [str(r["id"]) for r in
                                      self.client.request("GET", "/rules").json() or []]
        self._listener()
        said: list[str] = []
        streams: dict[str, tuple[str, list[str]]] = {}
        for rule_id in wanted:
            try:
                definition = self.client.request("GET", f"/rules/{rule_id}").json()
            except RestError:
                raise RecordError(f"rule {rule_id} is not on {self.client.server}; "
                                  f"GET /rules lists the rules") from None
            if not isinstance(definition.get("sql"), str):
                if self.rules:
                    raise RecordError(f"rule {rule_id} has no SQL (a graph rule): the "
                                      f"recording handles SQL rules only")
                continue
            uses = self._plan_rule(rule_id, definition, sinks, functions)
            for stream, symbol in self._plugin_streams(rule_id, sources):
                streams.setdefault(stream, (symbol, []))[1].append(rule_id)
                uses.append(f"stream {stream} ({symbol})")
            if uses:
                status = self.client.request("GET", f"/rules/{rule_id}/status").json()
                if status.get("status") != "running":
                    raise RecordError(f"rule {rule_id} is {status.get('status')}: start it "
                                      f"(POST /rules/{rule_id}/start) or leave it out")
                said.append(f"rule {rule_id}: " + ", ".join(uses))
            elif self.rules:
                raise RecordError(f"rule {rule_id} uses none of plugin {self.plugin}'s symbols "
                                  f"(sources {sorted(sources)}, sinks {sorted(sinks)}, "
                                  f"functions {sorted(functions)})")
        for stream, (symbol, readers) in streams.items():
            self._plan_stream(stream, symbol, readers)
        if not self.taps:
            raise RecordError(f"no running rule uses plugin {self.plugin}: create one, or "
                              f"name it with --rule")
        return said

    def _listener(self) -> Listener:
        if self.listener is None:
            self.listener = Listener(self.listen, self.advertise)
        return self.listener

    def _plan_rule(self, rule_id: str, definition: dict[str, Any], sinks: set[str],
                   functions: set[str]) -> list[str]:
        address = self._listener().address
        actions = list(definition.get("actions") or [])
        added, uses = [], []
        for index, action in enumerate(actions):
            for symbol, props in action.items():
                if symbol in sinks:
                    tag = f"sink:{rule_id}:{index}"
                    self.taps[tag] = Tap("sink", {"rule": rule_id, "symbol": symbol,
                                                  "action": index, "config": props})
                    added.append({self.recorder: {**props, ADDRESS_KEY: address,
                                                  TAG_KEY: tag}})
                    uses.append(f"sink {symbol} (action {index})")
        sql = definition.get("sql")
        new_sql = sql
        if isinstance(sql, str) and functions:
            def wrap(call: Any, text: str) -> str:
                site = f"call:{rule_id}:{call.start}"
                self.taps[site] = Tap("call", {"rule": rule_id, "symbol": call.name,
                                               "call": sql[call.start:call.end]})
                uses.append(f"function {call.name}")
                quoted = address.replace("'", "''")
                group = call.name.casefold() in {a.casefold() for a in self.aggregates}
                args_fn = f"{self.recorder}_{'groupargs' if group else 'args'}"
                enter = f"{self.recorder}_enter('{quoted}', '{site}'), " if group else ""
                if group:
                    self._groups[site] = len(call.args)
                return (f"{self.recorder}_result('{quoted}', '{site}', {enter}{args_fn}("
                        f"'{quoted}', '{site}'{''.join(', ' + a for a in call.args)}), {text})")
            try:
                new_sql, calls = wrap_calls(sql, functions, wrap)
            except ValueError as exc:
                raise RecordError(f"rule {rule_id}: {exc}") from None
            marked = {a.casefold() for a in self.aggregates}
            if re.search(r"\bgroup\s+by\b|window\s*\(", sql, re.I):
                for name in sorted({c.name for c in calls if c.name.casefold() not in marked}):
                    self.warnings.append(
                        f"rule {rule_id} groups rows: if {name} is an aggregate function, "
                        f"give --aggregate {name}, or its calls are recorded with one row's "
                        f"values instead of the group's")
        if added or new_sql != sql:
            patched = dict(definition, actions=actions + added)
            if new_sql != sql:
                patched["sql"] = new_sql
            self.patches.append(RulePatch(rule_id, definition, patched))
        return uses

    def _plugin_streams(self, rule_id: str, sources: set[str]) -> list[tuple[str, str]]:
        if not sources:
            return []
        topo = self.client.request("GET", f"/rules/{rule_id}/topo").json() or {}
        found = []
        for node in topo.get("sources") or []:
            stream = str(node).removeprefix("source_")
            try:
                options = self.client.request("GET", f"/streams/{stream}").json()["Options"]
            except (RestError, KeyError, TypeError):
                continue
            symbol = str((options or {}).get("type", ""))
            if symbol in sources:
                found.append((stream, symbol))
        return found

    def _plan_stream(self, stream: str, symbol: str, readers: list[str]) -> None:
        options = self.client.request("GET", f"/streams/{stream}").json()["Options"] or {}
        tag = f"source:{stream}"
        self.taps[tag] = Tap("source", {
            "rules": readers, "stream": stream, "symbol": symbol,
            "datasource": options.get("datasource", ""),
            "conf_key": options.get("conf_key") or None,
            "stream_props": {k: v for k, v in options.items()
                             if k not in ("type", "datasource", "conf_key")}})

    # -- the recording ------------------------------------------------------------

    def start(self) -> None:
        """Install the recorder plugin if needed, patch the rules, add the stream rules."""
        installed = {str(p.get("name")) for p in self.client.list_plugins()}
        if self.recorder not in installed:
            self._install_recorder()
        address = self._listener().address
        for patch in self.patches:
            patch.applied = True   # restored even if the update fails half-way
            self._put(patch.rule_id, patch.patched, "record")
        for tag, tap in self.taps.items():
            if tap.kind != "source":
                continue
            rule_id = f"{self.plugin}_rec_{tap.info['stream']}_{random.getrandbits(24):06x}"
            self.added_rules.append(rule_id)
            self.client.request("POST", "/rules", {
                "id": rule_id, "sql": f"SELECT * FROM {tap.info['stream']}",
                "actions": [{self.recorder: {"sendSingle": True, ADDRESS_KEY: address,
                                             TAG_KEY: tag}}]})

    def _install_recorder(self) -> None:
        from .pack import pack

        with tempfile.TemporaryDirectory(prefix="ekuiper-record-") as tmp:
            folder = write_recorder_plugin(Path(tmp) / self.recorder, self.recorder)
            vendor = None
            if self.vendor:
                from .vendor import VendorOptions

                vendor = VendorOptions(python_version=self.python_version)
            zip_path = Path(tmp) / f"{self.recorder}.zip"
            try:
                pack(folder, zip_path, vendor=vendor, check_code=False, log=io.StringIO())
            except PackagingError as exc:
                raise RecordError(f"cannot pack the recorder plugin: {exc}") from None
            self.installed = self.recorder
            rest.install_zip(self.client, zip_path, log=io.StringIO())

    def _put(self, rule_id: str, definition: dict[str, Any], why: str) -> None:
        try:
            self.client.request("PUT", f"/rules/{rule_id}", definition)
        except RestError as exc:
            raise RecordError(f"cannot update rule {rule_id} to {why}: {exc.message}") from None

    def collect(self, writer: FixtureWriter, *, seconds: float | None,
                records: int | None) -> None:
        """Write events until ``seconds`` pass or every tap has ``records`` records."""
        listener = self._listener()
        deadline = time.monotonic() + seconds if seconds is not None else None
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                return
            if records is not None and all(t.records >= records for t in self.taps.values()):
                return
            try:
                message = listener.messages.get(timeout=0.1)
            except queue.Empty:
                continue
            self._take(writer, message.header, message.payload)

    def drain(self, writer: FixtureWriter) -> None:
        listener = self._listener()
        quiet = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < quiet:
            try:
                message = listener.messages.get(timeout=0.05)
            except queue.Empty:
                continue
            self._take(writer, message.header, message.payload)

    def _take(self, writer: FixtureWriter, header: dict[str, Any], payload: bytes) -> None:
        self._take_one(writer, header, payload)
        if self._failed:        # written where they happened, with the rule's error
            self.write_failures(writer)

    def _take_one(self, writer: FixtureWriter, header: dict[str, Any], payload: bytes) -> None:
        kind = header.get("kind")
        if kind == "frame":
            tap = self.taps.get(str(header.get("tag")))
            if tap is None:
                return
            if tap.kind == "source":
                fields = frame_fields(payload)
                writer.write({"kind": "source", **tap.info,
                              "message": fields.get("frame", fields.get("text"))})
                tap.records += 1
                return
            event = {"kind": "sink", **{k: tap.info[k] for k in ("rule", "symbol", "action")},
                     "config": tap.info["config"], "framing": framing(tap.info["config"]),
                     **frame_fields(payload)}
            tap.records += max(1, len(frame_records(event)))
            writer.write(event)
        elif kind == "enter":
            site = str(header.get("site"))
            if site in self._open:      # the one before never got its result: it failed
                self._failed.append((site, self._open[site] or self._nulls(site)))
            self._open[site] = None
        elif kind == "args" and str(header.get("site")) in self._groups:
            self._open[str(header.get("site"))] = list(header.get("args") or [])
        elif kind == "args":
            site, token = str(header.get("site")), str(header.get("token"))
            # Calls of one site come one after another: an older one still waiting for its
            # result failed on the server.
            for older, (older_site, args) in list(self._pending.items()):
                if older_site == site:
                    self._failed.append((older_site, args))
                    del self._pending[older]
            self._pending[token] = (site, list(header.get("args") or []))
        elif kind == "result":
            site = str(header.get("site"))
            tap = self.taps.get(site)
            if site in self._groups:
                opened = self._open.pop(site, None)
                pending: tuple[str, list[Any]] | None = (site, opened or self._nulls(site))
            else:
                pending = self._pending.pop(str(header.get("token")), None)
            if pending is None or tap is None:
                return
            writer.write({"kind": "call", **tap.info, "args": pending[1],
                          "result": header.get("result")})
            tap.records += 1

    def _nulls(self, site: str) -> list[Any]:
        """What an aggregate gets over an empty group: null for each argument (v2.4)."""
        return [None] * self._groups.get(site, 1)

    def write_failures(self, writer: FixtureWriter) -> None:
        """The calls that failed on the server, with the rule's last error."""
        errors: dict[str, str] = {}
        for site, args in self._failed:
            tap = self.taps[site]
            rule = tap.info["rule"]
            if rule not in errors:
                try:
                    status = self.client.request("GET", f"/rules/{rule}/status").json()
                except RestError:
                    status = {}
                found = [str(v) for k, v in status.items()
                         if k.endswith("_last_exception") and v]
                # "run Select error: alias: ... meet error, err:call func f error: X":
                # the part after the last "err:" is the function's, without our wrapping.
                errors[rule] = (found[0].rsplit("err:", 1)[-1] if found
                                else "the call failed on the server")
            writer.write({"kind": "call", **tap.info, "args": args, "error": errors[rule]})
            tap.records += 1
        self._failed.clear()

    def _running_again(self, rule_id: str, timeout: float = 10.0) -> str | None:
        """Wait for a restored rule to run; restart it when it stopped by error.

        eKuiper can fail a rule it restarts at once with ``can't listen on pull socket for
        ipc:///tmp/<rule>_<stream>_0.ipc: address in use`` (seen on v2.4 when a rule was
        deleted and created again within a second): the old source socket is not yet closed.
        """
        deadline = time.monotonic() + timeout
        restarted = seen_running = False
        while True:
            try:
                status = str(self.client.request("GET", f"/rules/{rule_id}/status").json()
                             .get("status"))
            except RestError as exc:
                return f"status of rule {rule_id}: {exc.message}"
            if status == "running":
                if seen_running:
                    return None
                # A rule that fails to start shows "running" for a moment first.
                seen_running = True
                time.sleep(1.0)
                continue
            if time.monotonic() >= deadline:
                return f"rule {rule_id} is {status} after the recording"
            if status.startswith("stopped") and not restarted:
                time.sleep(1.0)
                try:
                    self.client.request("POST", f"/rules/{rule_id}/restart")
                except RestError as exc:
                    return f"restart rule {rule_id}: {exc.message}"
                restarted, seen_running = True, False
            time.sleep(0.2)

    def restore(self) -> list[str]:
        """Put everything back; the problems met (each also tried to the end)."""
        problems = []
        for rule_id in reversed(self.added_rules):
            try:
                self.client.request("DELETE", f"/rules/{rule_id}")
            except RestError as exc:
                problems.append(f"delete rule {rule_id}: {exc.message}")
        self.added_rules.clear()
        for patch in self.patches:
            if patch.applied:
                try:
                    self._put(patch.rule_id, patch.original, "restore it")
                    patch.applied = False
                except RecordError as exc:
                    problems.append(str(exc))
        for patch in self.patches:
            problem = self._running_again(patch.rule_id)
            if problem:
                problems.append(problem)
        if self.installed is not None:
            try:
                self.client.delete(self.installed)
                self.installed = None
            except RestError as exc:
                problems.append(f"delete plugin {self.installed}: {exc.message}")
        if self.listener is not None:
            self.listener.close()
        return problems


@contextmanager
def _interrupts_end_the_recording() -> Iterator[None]:
    """SIGTERM ends the recording like Ctrl-C, so that it restores the server too."""
    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield           # signals reach the main thread only
        return
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _uninterrupted() -> Iterator[None]:
    """A second Ctrl-C must not stop the restoring half-way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)


def record(client: rest.RestClient, plugin: str, out: str | Path, *,
           rules: Sequence[str] = (), seconds: float | None = None,
           records: int | None = None, log: IO[str] | None = None,
           python_version: str = "3.12", vendor: bool = True,
           listen: str = "127.0.0.1", advertise: str | None = None,
           aggregates: Sequence[str] = ()) -> int:
    """Record what ``plugin`` receives on the server into the fixture ``out``; returns the
    number of events written. The server is restored before this returns or raises,
    also on KeyboardInterrupt (which is raised again after the restore)."""
    if seconds is None and records is None:
        raise RecordError("say how long to record: --seconds N or --records N")
    log = log if log is not None else io.StringIO()
    session = Recording(client, plugin, Path(out), log, rules, python_version, vendor,
                        listen, advertise, aggregates)
    writer: FixtureWriter | None = None
    before: ServerState | None = None
    interrupted = False
    with _interrupts_end_the_recording():
        try:
            said = session.plan()
            before = server_state(client, [p.rule_id for p in session.patches])
            version = str((client.request("GET", "/").json() or {}).get("version", ""))
            writer = FixtureWriter(out, {
                "plugin": plugin, "server": client.server, "ekuiper": version,
                "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "rules": {p.rule_id: {"sql": p.original.get("sql"),
                                      "actions": p.original.get("actions")}
                          for p in session.patches}})
            for line in said:
                log.write(f"recording {line}\n")
            for line in session.warnings:
                log.write(f"warning: {line}\n")
            session.start()
            limit = (f"{seconds:g} s" if seconds is not None else "") + (
                " or " if seconds is not None and records is not None else "") + (
                f"{records} record(s) of each" if records is not None else "")
            log.write(f"recording for {limit} into {out} (Ctrl-C stops)\n")
            log.flush()
            session.collect(writer, seconds=seconds, records=records)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            with _uninterrupted():
                if writer is not None:
                    session.write_failures(writer)
                problems = session.restore()
                if writer is not None:
                    session.drain(writer)
                    writer.close()
            if problems:
                raise RecordError("the server could not be restored in full: "
                                  + "; ".join(problems))
    if before is not None:
        after = server_state(client, list(before.definitions))
        for difference in before.differences(after):
            log.write(f"warning: the server is not as it was: {difference}\n")
    count = writer.count if writer is not None else 0
    log.write(f"{'interrupted: ' if interrupted else ''}wrote {count} event(s) to {out}; "
              f"the rules are as they were and what the recording added is removed\n")
    if interrupted:
        raise KeyboardInterrupt
    return count


def _cmd_record(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    client = rest.RestClient(args.server, token=args.token, timeout=args.timeout)
    try:
        count = record(client, args.plugin, args.out, rules=args.rule or (),
                       seconds=args.seconds, records=args.records, log=err,
                       python_version=args.python_version, vendor=not args.no_vendor,
                       listen=args.listen, advertise=args.advertise,
                       aggregates=args.aggregate or ())
    except RecordError as exc:
        err.write(f"error: {exc}\n")
        return 1
    out.write(json.dumps({"ok": True, "events": count, "out": str(args.out)}) + "\n"
              if args.json else f"{count} event(s) in {args.out}\n")
    return 0


def add_record_parser(sub: Any, server_args: Any) -> None:
    """The ``record`` command, added to ``ekuiper-plugin``'s sub-commands."""
    p = sub.add_parser(
        "record", help="record what a plugin's symbols receive on a running eKuiper into "
        "a fixture file", description="Record, for the rules that use a plugin, the frames "
        "its sinks get, the calls of its functions with their arguments and what its "
        "sources emit, into a JSON-lines fixture that `run DIR --replay` and "
        "ekuiper_sdk.testing replay. The rules are changed for the recording only.")
    p.add_argument("--plugin", required=True, help="the installed plugin to record")
    p.add_argument("--rule", action="append", metavar="ID",
                   help="a rule to record (repeatable; default: every running rule that "
                   "uses the plugin)")
    p.add_argument("--seconds", type=float, help="record for this long")
    p.add_argument("--records", type=int,
                   help="record until each sink, function call and source has this many")
    p.add_argument("--aggregate", action="append", metavar="FUNCTION",
                   help="a function of the plugin that is an aggregate (repeatable): its "
                   "calls are recorded with the group's lists of values, as it gets them")
    p.add_argument("--out", required=True, metavar="FILE.jsonl", help="the fixture to write")
    p.add_argument("--python-version", default="3.12",
                   help="the server's Python, for the recorder plugin's wheels (default 3.12)")
    p.add_argument("--no-vendor", action="store_true", help="the server's Python has "
                   "ekuiper-sdk: install the recorder plugin without wheels")
    p.add_argument("--listen", default="127.0.0.1",
                   help="the address the recording listens on (default 127.0.0.1)")
    p.add_argument("--advertise", help="the address eKuiper reaches this machine at "
                   "(eKuiper in Docker or on another machine)")
    server_args(p)
    p.set_defaults(func=_cmd_record)
