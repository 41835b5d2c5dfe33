"""Many stand-ins for eKuiper's REST API in one process, for the fleet tests.

:class:`FleetServer` is the test REST server (``fake_ekuiper_rest.FakeEkuiper``) plus what
a rollout watches: ``GET /rules/<id>/status`` with a records counter that grows only while
the plugin the rule uses is running, and knobs for the ways a real server goes wrong: slow
answers, a version whose plugin dies after it started, a version whose install fails (the
plugin is then deleted, as eKuiper's update deletes before it installs), a version under
which the rules stop, or run and take no records. :func:`fleet`
starts N of them; :func:`dead_url` is a port nothing listens on.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .fake_ekuiper_rest import Failure, FakeEkuiper


class FleetServer(FakeEkuiper):
    """One server. ``dies_on``: version -> seconds after its install when its plugin's
    status turns to ``error``; ``install_fails_on``: versions whose install fails."""

    def __init__(self, root: Path, *, delay: float = 0.0,
                 dies_on: dict[str, float] | None = None,
                 install_fails_on: tuple[str, ...] = (),
                 stops_rules_on: tuple[str, ...] = (),
                 starves_on: tuple[str, ...] = ()) -> None:
        super().__init__(root)
        self.delay = delay
        self.dies_on = dict(dies_on or {})
        self.install_fails_on = install_fails_on
        #: Versions under which the plugin's rules read as stopped, or take no records.
        self.stops_rules_on = stops_rules_on
        self.starves_on = starves_on
        self.installed_at: dict[str, float] = {}
        self.rule_plugin: dict[str, str] = {}
        self.records: dict[str, int] = {}
        self.history: list[tuple[str, str]] = []   # (method, version) of each change

    def add_rule(self, rule_id: str, plugin: str, function: str) -> None:
        """A running rule that calls the plugin's function (found by its SQL)."""
        self.rules[rule_id] = {"id": rule_id, "sql": f"SELECT {function}(a) FROM s",
                               "actions": [{"log": {}}]}
        self.rule_plugin[rule_id] = plugin
        self.records[rule_id] = 0

    def version_of(self, plugin: str) -> str | None:
        info = self.registry.get(plugin)
        return None if info is None else str(info["version"])

    def _register(self, desc: dict[str, Any], prefix: str) -> None:
        super()._register(desc, prefix)
        name = str(desc.get("name", ""))
        version = self.registry[name]["version"]
        if version in self.install_fails_on:
            self._delete(name, "")
            raise Failure(f"{prefix}: fail to install plugin: plugin {name} control "
                          "handshake error: receive time out")
        self.installed_at[name] = time.monotonic()
        self.history.append(("install", str(version)))

    def _refresh(self, plugin: str) -> None:
        version = self.version_of(plugin)
        if version is None or version not in self.dies_on:
            return
        if time.monotonic() - self.installed_at.get(plugin, 0) >= self.dies_on[version]:
            self.statuses[plugin] = {"refCount": {}, "status": "error",
                                     "errMsg": "signal: killed"}

    def dispatch(self, method: str, raw_path: str, ctype: str,
                 body: bytes) -> tuple[int, str, bytes]:
        if self.delay:
            time.sleep(self.delay)
        path = urllib.parse.unquote(urllib.parse.urlsplit(raw_path).path)
        parts = [p for p in path.split("/") if p]
        with self.lock:
            for plugin in list(self.registry):
                self._refresh(plugin)
            if len(parts) == 3 and parts[0] == "rules" and parts[2] == "status":
                rid = parts[1]
                if rid not in self.rules:
                    return 404, "text/plain", json.dumps(
                        {"error": 1002, "message": f"rule {rid} is not found"}).encode()
                plugin = self.rule_plugin.get(rid, "")
                version = self.version_of(plugin)
                if self.statuses.get(plugin, {}).get("status") == "running" and \
                        version not in self.starves_on:
                    self.records[rid] += 1
                stopped = version in self.stops_rules_on
                status = {"status": "stopped" if stopped else "running",
                          "message": "run Select error" if stopped else "",
                          "source_s_0_records_in_total": self.records[rid],
                          "op_2_project_0_records_in_total": self.records[rid]}
                return self._json(status)
            return super().dispatch(method, raw_path, ctype, body)


def dead_url() -> str:
    """A loopback URL where nothing listens (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def fleet(root: Path, count: int, **knobs: Any) -> Iterator[list[FleetServer]]:
    """``count`` servers, each with its own folder under ``root``; ``knobs`` for all."""
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(FleetServer(root / f"s{i}", **knobs))
                   for i in range(count)]
        yield servers




def free_port_runs(count: int) -> tuple[int, int, int]:
    """Three first ports (REST, CLI, http) each followed by ``count - 1`` free ports, as
    ``benchmarks.kuiperd_fleet`` numbers them; held together while checked, so they differ."""
    for _ in range(100):
        held: list[socket.socket] = []
        try:
            firsts = []
            for _ in range(3):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", 0))
                first = s.getsockname()[1]
                for i in range(1, count):
                    t = socket.socket()
                    held.append(t)
                    t.bind(("127.0.0.1", first + i))
                firsts.append(first)
            return firsts[0], firsts[1], firsts[2]
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError(f"found no {count} consecutive free ports")
