"""How a plugin's cost grows with its rules, through a real eKuiper (``--scale``).

For each number of rules N (``--rules 1,10,100,500``) and each SDK in turn (the official
SDK, ours, ours supervised with ``--supervised``, and eKuiper's Go SDK when ``--go-plugin
PATH`` gives a plugin binary), the benchmark installs a fresh copy of
``plugins/ekuiper_bench.py`` (the Go plugin for Go) and creates N rules on it, each
reading the plugin's source from an idle stream (its source emits nothing), calling its
function and writing to its sink. Then, for the plugin's processes (the one eKuiper
started, found by its executable's folder, and every process under it, such as a
supervisor's workers):

- the time to create the N rules, from the first ``POST /rules`` until every rule's
  status is ``running`` (eKuiper's side included), and how many were running;
- CPU over an idle window (ms a second), then resident memory (RSS, and PSS from
  ``/proc/<pid>/smaps_rollup``), threads and file descriptors, the rules settled;
- CPU per record of one more rule fed by a feeder plugin (on ekuiper-sdk, in a process of
  its own) at a modest pace, through the plugin's function and sink, less the idle CPU;
- the time to delete the N rules until none is listed, then RSS, threads, fds and idle
  CPU again, to compare with the one-rule figures (the fed rule ran in between).

The Go plugin binary must take its plugin name from its file name and serve the symbols
``<name>_src``, ``<name>_fn`` and ``<name>_sink``; the benchmark writes its manifest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from .ekuiper import (
    Server,
    bench_tag,
    create_stream,
    install_plugin,
    pack,
    renamed_zip,
    wait_for,
)

#: The SDKs in the order of the first round; later rounds alternate it. "supervised" is
#: ours with ``supervise=True`` (``--supervised``); "go" needs ``--go-plugin``.
SDKS = ("official", "ours", "supervised", "go")
DEFAULT_RULES = (1, 10, 100, 500)
#: The feeder's pace for the CPU-per-record rule, tuples a second: enough records for a
#: figure in a few seconds, little enough that eKuiper and the feeder leave the plugin a core.
FEED_RATE = 1_000


@dataclass(frozen=True)
class ScalePlan:
    """Seconds to let rules settle, to measure idle CPU, to feed one rule, and to wait after
    the deletion before the last figures."""

    settle_s: float = 5.0
    idle_s: float = 10.0
    feed_s: float = 6.0
    after_s: float = 5.0


FULL = ScalePlan()
#: A smoke test of the mode: real figures, too short to compare.
TINY = ScalePlan(settle_s=2.0, idle_s=2.0, feed_s=2.0, after_s=1.0)


def parse_rules(text: str) -> tuple[int, ...]:
    """The rule counts of ``--rules``: positive integers, comma-separated.

    >>> parse_rules("1,10, 100")
    (1, 10, 100)
    >>> parse_rules("0")
    Traceback (most recent call last):
    ...
    ValueError: --rules takes positive whole numbers separated by commas, such as 1,10,100; got '0'
    """
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise ValueError("--rules takes positive whole numbers separated by commas, such as "
                         f"1,10,100; got {text!r}")
    return counts


# ---------------------------------------------------------------------------
# The plugin's processes


def _parents(proc: Path = Path("/proc")) -> dict[int, int]:
    """pid -> parent pid of every process now."""
    parents = {}
    for entry in os.listdir(proc):
        if entry.isdigit():
            try:
                stat = (proc / entry / "stat").read_text()
            except OSError:
                continue
            # The command name is in parentheses and may hold spaces: split after it.
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def descendants(roots: set[int], parents: dict[int, int]) -> set[int]:
    """``roots`` and every process under them.

    >>> sorted(descendants({10}, {10: 1, 11: 10, 12: 11, 13: 1}))
    [10, 11, 12]
    """
    found = set(roots)
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found


def plugin_processes(name: str) -> set[int]:
    """The process eKuiper started for plugin ``name`` (its executable, or the script its
    interpreter runs, is in ``.../portable/<name>/``) and every process under it."""
    folder = f"/portable/{name}/".encode()
    roots = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if any(folder in arg for arg in args[:3]):
                roots.add(int(entry))
    if not roots:
        raise LookupError(f"no running process for plugin {name}")
    return descendants(roots, _parents())


@dataclass
class Footprint:
    """Memory and kernel objects of a set of processes, summed."""

    rss_kib: int = 0
    pss_kib: int = 0
    threads: int = 0
    fds: int = 0
    processes: int = 0


def _kib(text: str, key: str) -> int:
    """The ``key:   123 kB`` figure of a /proc file, 0 if absent.

    >>> _kib("Rss:   10 kB\\nPss:   7 kB\\n", "Pss")
    7
    """
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def footprint(pids: set[int]) -> Footprint:
    got = Footprint()
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            threads = len(os.listdir(f"/proc/{pid}/task"))
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue  # ended meanwhile
        got.rss_kib += _kib(status, "VmRSS")
        got.pss_kib += _kib(rollup, "Pss")
        got.threads += threads
        got.fds += fds
        got.processes += 1
    return got


def thread_times(pids: set[int]) -> dict[tuple[int, int], tuple[float, int]]:
    """CPU ms (schedstat: ns resolution) and context switches of every live thread of
    ``pids``, by (pid, thread id)."""
    times = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    cpu_ns = int(f.read().split()[0])
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    switched = sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
            except OSError:
                continue  # the thread ended meanwhile
            times[(pid, int(tid))] = (cpu_ns / 1e6, switched)
    return times


def window_delta(before: dict[tuple[int, int], tuple[float, int]],
                 after: dict[tuple[int, int], tuple[float, int]]) -> tuple[float, int]:
    """CPU ms and switches between two :func:`thread_times` readings: each thread alive at
    the end counts what it spent since the start (all of it if it started later); a thread
    that ended in between is left out, so that its past never makes a window negative.

    >>> window_delta({(1, 1): (5.0, 2), (1, 2): (90.0, 9)}, {(1, 1): (7.5, 3), (1, 3): (1.0, 1)})
    (3.5, 2)
    """
    cpu, switched = 0.0, 0
    for key, (c, s) in after.items():
        c0, s0 = before.get(key, (0.0, 0))
        cpu += c - c0
        switched += s - s0
    return cpu, switched


# ---------------------------------------------------------------------------
# The run


def go_zip(binary: Path, name: str, target: Path) -> Path:
    """A portable-plugin zip of the Go plugin ``binary`` installed as plugin ``name``."""
    manifest = {"version": "v1.0.0", "language": "go", "executable": name,
                "sources": [f"{name}_src"], "sinks": [f"{name}_sink"],
                "functions": [f"{name}_fn"]}
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{name}.json", json.dumps(manifest))
        zf.writestr(f"sources/{name}_src.yaml", "idle:\n  idle: true\n")
        entry = zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0))
        entry.external_attr = 0o100755 << 16
        entry.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(entry, binary.read_bytes())
    return target


class ScaleBench:
    """Installs a fresh plugin per SDK and rule count, creates the rules, measures."""

    def __init__(self, server: Server, plan: ScalePlan, python_version: str,
                 rules: tuple[int, ...] = DEFAULT_RULES, *, go_plugin: Path | None = None,
                 ours: Path | None = None, supervised: bool = False,
                 log: Callable[[str], None] = print, tag: str | None = None) -> None:
        self.server = server
        self.plan = plan
        self.python_version = python_version
        self.rules = rules
        self.go_plugin = go_plugin
        self.ours = ours
        self.log = log
        self.tag = tag or bench_tag(server.url)
        wanted = {"official", "ours"} | ({"go"} if go_plugin else set()) | (
            {"supervised"} if supervised else set())
        self.sdks = tuple(s for s in SDKS if s in wanted)
        self.names = {sdk: f"{self.tag}_{sdk}" for sdk in self.sdks}
        self.feeder = f"{self.tag}_feed"
        #: "<sdk>/<n>" -> figure -> one value per round
        self.results: dict[str, dict[str, list[float]]] = {}
        self._plugins: list[str] = []
        self._streams: list[str] = []
        self._rules: set[str] = set()
        self._zips: dict[str, Path] = {}
        self._zip_dir = Path(tempfile.mkdtemp(prefix="ekuiper-scale-"))

    # -- installing

    def install(self) -> None:
        for sdk in self.sdks:
            if sdk == "go":
                continue  # zipped per copy: a binary cannot be renamed inside
            self.log(f"packing {self.names[sdk]} ({sdk})")
            self._zips[sdk] = pack(self.names[sdk], sdk, self._zip_dir, self.python_version,
                                   sdk_tree=self.ours)
        # The feeder stays on the installed SDK whatever --ours says: it is not measured.
        self.log(f"installing {self.feeder} (ours, {FEED_RATE:,} tuples/s)")
        self._install(self.feeder, pack(self.feeder, "ours", self._zip_dir,
                                        self.python_version, feed_rate=FEED_RATE))
        self.feed_stream = self._stream(self.feeder, "feed")

    def _install(self, name: str, zipped: Path) -> None:
        install_plugin(self.server, name, zipped)
        self._plugins.append(name)

    def _install_copy(self, sdk: str, suffix: str) -> str:
        name = f"{self.names[sdk]}_{suffix}"
        target = self._zip_dir / f"{name}.zip"
        if sdk == "go":
            assert self.go_plugin is not None
            go_zip(self.go_plugin, name, target)
        else:
            renamed_zip(self._zips[sdk], self.names[sdk], name, target)
        self._install(name, target)
        return name

    def _uninstall(self, name: str) -> None:
        self.server.quietly("DELETE", f"/plugins/portables/{name}")
        self._plugins.remove(name)

    def _stream(self, plugin: str, conf: str) -> str:
        stream = create_stream(self.server, plugin, conf)
        self._streams.append(stream)
        return stream

    # -- rules

    def _create_rule(self, rule_id: str, sql: str, action: dict[str, Any]) -> None:
        self._rules.add(rule_id)
        self.server.call("POST", "/rules", {"id": rule_id, "sql": sql, "actions": [action]})

    def statuses(self, ids: set[str]) -> dict[str, str]:
        """The status of each of ``ids`` that eKuiper lists now."""
        listed = self.server.call("GET", "/rules")
        return {r["id"]: str(r.get("status", "")) for r in listed if r.get("id") in ids}

    def _wait_rules(self, ids: set[str], done: Callable[[dict[str, str]], bool],
                    timeout: float) -> dict[str, str]:
        give_up = time.monotonic() + timeout
        while True:
            got = self.statuses(ids)
            if done(got) or time.monotonic() > give_up:
                return got
            time.sleep(0.1)

    def create_rules(self, name: str, stream: str, n: int) -> tuple[set[str], float, float, int]:
        """Create ``n`` rules; their ids, the seconds the POSTs took, the seconds until all
        ran (or the timeout), and how many ran by then."""
        ids = {f"{name}_r{i}" for i in range(n)}
        t0 = time.monotonic()
        for rule_id in sorted(ids):
            self._create_rule(rule_id, f"SELECT {name}_fn(data) AS d FROM {stream}",
                              {f"{name}_sink": {}})
        posted = time.monotonic() - t0
        got = self._wait_rules(ids, lambda s: sum(v == "running" for v in s.values()) == n,
                               timeout=30 + n * 0.5)
        running = time.monotonic() - t0
        return ids, posted, running, sum(v == "running" for v in got.values())

    def delete_rules(self, ids: set[str]) -> float:
        """Delete the rules; the seconds until eKuiper lists none of them."""
        t0 = time.monotonic()
        for rule_id in sorted(ids):
            self.server.quietly("DELETE", f"/rules/{rule_id}")
        self._wait_rules(ids, lambda s: not s, timeout=30 + len(ids) * 0.5)
        self._rules -= ids
        return time.monotonic() - t0

    # -- one measurement

    def measure(self, sdk: str, n: int, rnd: int) -> None:
        name = self._install_copy(sdk, f"n{n}r{rnd}")
        got = self.results.setdefault(f"{sdk}/{n}", {})

        def put(key: str, value: float) -> None:
            got.setdefault(key, []).append(value)

        try:
            stream = self._stream(name, "idle")
            ids, posted, started, running = self.create_rules(name, stream, n)
            put("create_post_s", posted)
            put("create_s", started)
            wait_for(lambda: plugin_processes(name), f"plugin {name}")
            time.sleep(self.plan.settle_s)
            cpu, switches = self.idle_cpu(name)
            put("idle_cpu_ms_per_s", cpu)
            put("idle_switches_per_s", switches)
            for key, value in asdict(footprint(plugin_processes(name))).items():
                put(key, value)
            put("running", sum(v == "running" for v in self.statuses(ids).values()))
            put("running_at_start", running)
            per_record = self.feed(name, cpu)
            if per_record is not None:
                put("cpu_us_per_record", per_record)
            put("delete_s", self.delete_rules(ids))
            time.sleep(self.plan.after_s)
            after = footprint(plugin_processes(name))
            put("after_rss_kib", after.rss_kib)
            put("after_pss_kib", after.pss_kib)
            put("after_threads", after.threads)
            put("after_fds", after.fds)
            # After the fed rule and the N rules are gone: a plugin that keeps waking up
            # for stopped instances shows here.
            put("after_idle_cpu_ms_per_s", self.idle_cpu(name)[0])
        except LookupError as exc:  # the plugin's process ended: a finding, not a crash
            self.log(f"  {sdk} x{n}: {exc} any more; the figures taken before are kept")
            put("plugin_exited", 1)
        finally:
            for rule_id in [r for r in self._rules if r.startswith(name + "_")]:
                self.server.quietly("DELETE", f"/rules/{rule_id}")
                self._rules.discard(rule_id)
            self.server.quietly("DELETE", f"/streams/{name}_idle")
            self._uninstall(name)
        self.log(f"  {sdk} x{n}: " + ", ".join(f"{k} {v[-1]:,.1f}" for k, v in got.items()))

    def idle_cpu(self, name: str) -> tuple[float, float]:
        """CPU ms and context switches a second of ``name``'s processes over the idle
        window."""
        pids = plugin_processes(name)
        before, t0 = thread_times(pids), time.monotonic()
        time.sleep(self.plan.idle_s)
        cpu, switched = window_delta(before, thread_times(pids))
        dt = time.monotonic() - t0
        return cpu / dt, switched / dt

    def feed(self, name: str, baseline: float) -> float | None:
        """CPU µs per record of one more rule, the feeder's tuples through ``name``'s
        function and sink, less ``baseline`` (ms a second: the idle rules' own CPU); None
        if no record came through."""
        rule_id = f"{name}_feed"
        sink = f"{name}_sink"
        self._create_rule(rule_id, f"SELECT {name}_fn(data) AS d FROM {self.feed_stream}",
                          {sink: {}})

        def count() -> int:
            status = self.server.call("GET", f"/rules/{rule_id}/status")
            return int(status.get(f"sink_{sink}_0_0_records_out_total", 0))

        try:
            self._wait_rules({rule_id}, lambda s: s.get(rule_id) == "running", 30)
            time.sleep(2.0)  # the rule settles
            pids = plugin_processes(name)
            before, n_a, t0 = thread_times(pids), count(), time.monotonic()
            time.sleep(self.plan.feed_s)
            (cpu, _), n_b = window_delta(before, thread_times(pids)), count()
            dt = time.monotonic() - t0
        finally:
            self.server.quietly("DELETE", f"/rules/{rule_id}")
            self._rules.discard(rule_id)
        if n_b <= n_a:
            return None
        return (cpu - baseline * dt) * 1000 / (n_b - n_a)

    def run(self, rounds: int = 1) -> None:
        self.install()
        try:
            for rnd in range(rounds):
                for i, n in enumerate(self.rules):
                    order = self.sdks if (rnd + i) % 2 == 0 else self.sdks[::-1]
                    for sdk in order:
                        self.log(f"round {rnd + 1}: {n} rule(s) on {sdk}")
                        self.measure(sdk, n, rnd + 1)
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        for rule_id in list(self._rules):
            self.server.quietly("DELETE", f"/rules/{rule_id}")
        for stream in self._streams:
            self.server.quietly("DELETE", f"/streams/{stream}")
        for name in list(self._plugins):
            self.server.quietly("DELETE", f"/plugins/portables/{name}")
        shutil.rmtree(self._zip_dir, ignore_errors=True)
        for path in Path("/tmp").glob(f"*{self.tag}_*.ipc"):
            path.unlink(missing_ok=True)

    # -- the report

    def table(self) -> str:
        return scale_table(self.results, self.sdks, self.rules)


def _med(results: dict[str, dict[str, list[float]]], key: str, what: str) -> float | None:
    values = results.get(key, {}).get(what)
    return statistics.median(values) if values else None


def scale_table(results: dict[str, dict[str, list[float]]], sdks: tuple[str, ...],
                rules: tuple[int, ...]) -> str:
    """Markdown tables of the medians: the figures per SDK and rule count, then the ratios
    ours/official, then what the deletion left over the one-rule figures.

    >>> r = {"official/1": {"rss_kib": [2048], "pss_kib": [1024], "threads": [4], "fds": [8],
    ...                     "idle_cpu_ms_per_s": [1.0], "cpu_us_per_record": [100.0],
    ...                     "create_s": [0.5], "delete_s": [0.25], "running": [1],
    ...                     "after_rss_kib": [2048], "after_threads": [3], "after_fds": [6],
    ...                     "after_idle_cpu_ms_per_s": [0.5]},
    ...      "ours/1": {"rss_kib": [1024], "threads": [2], "running": [1]}}
    >>> lines = scale_table(r, ("official", "ours"), (1,)).splitlines()
    >>> print("\\n".join(lines[2:4]))
    | 1 | official | 1/1 | 2.0 | 1.0 | 4 | 8 | 1.00 | 100.0 | 0.50 | 0.25 | 2.0 / 3 / 6 / 0.50 |
    | 1 | ours | 1/1 | 1.0 | - | 2 | - | - | - | - | - | - / - / - / - |
    >>> print("\\n".join(lines[5:]))
    ours / official
    | rules | RSS | PSS | threads | fds | idle CPU | CPU/rec | create | delete |
    |---|---|---|---|---|---|---|---|---|
    | 1 | 0.50 | - | 0.50 | - | - | - | - | - |
    <BLANKLINE>
    after deleting the rules, RSS over the 1-rule figure (MiB)
    | SDK | 1 |
    |---|---|
    | official | +0.0 |
    | ours | - |
    """

    def fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
        return "-" if value is None else format(value / scale, spec)

    cols = ("running", "RSS MiB", "PSS MiB", "threads", "fds", "idle CPU ms/s", "CPU µs/rec",
            "create s", "delete s", "after: RSS MiB / threads / fds / idle CPU ms/s")
    lines = ["| rules | SDK | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for n in rules:
        for sdk in sdks:
            key = f"{sdk}/{n}"
            if key not in results:
                continue

            def m(what: str, key: str = key) -> float | None:
                return _med(results, key, what)

            running = m("running")
            after = " / ".join((fmt(m("after_rss_kib"), ".1f", 1024),
                                fmt(m("after_threads"), ".0f"), fmt(m("after_fds"), ".0f"),
                                fmt(m("after_idle_cpu_ms_per_s"), ".2f")))
            cells = (f"{fmt(running, '.0f')}/{n}", fmt(m("rss_kib"), ".1f", 1024),
                     fmt(m("pss_kib"), ".1f", 1024), fmt(m("threads"), ".0f"),
                     fmt(m("fds"), ".0f"), fmt(m("idle_cpu_ms_per_s"), ".2f"),
                     fmt(m("cpu_us_per_record"), ".1f"), fmt(m("create_s"), ".2f"),
                     fmt(m("delete_s"), ".2f"), after)
            label = sdk + (" (its process ended)" if m("plugin_exited") else "")
            lines.append(f"| {n} | {label} | " + " | ".join(cells) + " |")
    figures = ("rss_kib", "pss_kib", "threads", "fds", "idle_cpu_ms_per_s",
               "cpu_us_per_record", "create_s", "delete_s")
    lines += ["", "ours / official",
              "| rules | RSS | PSS | threads | fds | idle CPU | CPU/rec | create | delete |",
              "|---|---|---|---|---|---|---|---|---|"]
    for n in rules:
        ratios = []
        for what in figures:
            mine, theirs = _med(results, f"ours/{n}", what), _med(results, f"official/{n}", what)
            ratios.append(f"{mine / theirs:.2f}" if mine is not None and theirs else "-")
        lines.append(f"| {n} | " + " | ".join(ratios) + " |")
    lines += ["", "after deleting the rules, RSS over the 1-rule figure (MiB)",
              "| SDK | " + " | ".join(str(n) for n in rules) + " |",
              "|---|" + "---|" * len(rules)]
    for sdk in sdks:
        base = _med(results, f"{sdk}/1", "rss_kib")
        deltas = []
        for n in rules:
            left = _med(results, f"{sdk}/{n}", "after_rss_kib")
            deltas.append(f"{(left - base) / 1024:+.1f}" if left is not None and base else "-")
        lines.append(f"| {sdk} | " + " | ".join(deltas) + " |")
    return "\n".join(lines)


def run_scale(server: Server, plan: ScalePlan, python_version: str, args: argparse.Namespace,
              tag: str | None = None) -> int:
    from .ekuiper import describe

    rules = parse_rules(args.rules)
    go_plugin = args.go_plugin.absolute() if args.go_plugin else None
    bench = ScaleBench(server, plan, python_version, rules, go_plugin=go_plugin,
                       ours=args.ours.resolve(), supervised=args.supervised, tag=tag)
    print(describe(server, python_version))
    started = time.monotonic()
    bench.run(rounds=args.reps or 1)
    print(f"\nscale: {', '.join(map(str, rules))} idle rule(s) per plugin; medians of "
          f"{args.reps or 1} round(s); idle CPU over {plan.idle_s:g} s; CPU per record of one "
          f"rule fed {FEED_RATE:,} tuples/s over {plan.feed_s:g} s, idle CPU subtracted; "
          f"{time.monotonic() - started:.0f} s")
    print(bench.table())
    if args.json is not None:
        args.json.write_text(json.dumps(bench.results, indent=1))
    return 0
