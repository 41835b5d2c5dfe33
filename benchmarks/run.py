"""Side-by-side throughput, latency and memory of ekuiper-sdk and the official SDK.

Run from the repository root::

    python -m benchmarks            # 3 repetitions, medians (a few minutes on 2 cores)
    python -m benchmarks --quick    # 1 short repetition

Each figure comes from one plugin process started the way eKuiper starts it, talking to
a host written in Go (``benchmarks/host``, mangos v3 for the control channel like the
eKuiper server). The same plugin file runs on both SDKs (``plugins/bench_plugin.py``,
only its import differs); ``plugins/bare_plugin.py`` is the ceiling, the same socket
pattern in bare pynng; the host's own capacity is measured against a plugin written in
Go (``benchhost peer``). See docs/performance.md for what the figures mean.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .official_sdk import OfficialSDKUnavailable, official_python

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HOST_SRC = HERE / "host"
PLUGINS = HERE / "plugins"

#: The plugin file and sink symbol of "ours, decoded": the sink whose users get records
#: decoded from JSON. Swapping in another form of that sink (say, a decorator-style
#: plugin) is a change of this one line.
OURS_DECODED = (PLUGINS / "bench_decorated.py", "decoded")

#: The implementations measured side by side.
IMPLS = ("official", "ours", "ceiling")
#: The measurements, in the order they run (``--only`` picks some).
GROUPS = ("source", "sink", "sink_ack", "sink_dec", "sink_dec_ack", "func", "stop", "memory",
          "capacity")


@dataclass
class Sizes:
    """How much work each measurement does."""

    reps: int = 3
    source: int = 100_000
    sink: int = 50_000
    sink_ack: int = 10_000
    func: int = 20_000
    stop_trials: int = 10
    memory: bool = True


FULL = Sizes()
QUICK = Sizes(reps=1, source=20_000, sink=10_000, sink_ack=2_000, func=5_000, stop_trials=4)
TINY = Sizes(reps=1, source=500, sink=500, sink_ack=200, func=200, stop_trials=1, memory=False)


class BenchError(RuntimeError):
    """A measurement that could not be taken; the message says which and why."""


# ---------------------------------------------------------------------------
# The Go host


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ekuiper-sdk-bench"


def build_host(log: Callable[[str], None] = print) -> Path:
    """Build ``benchhost`` once per version of its sources, into the cache directory."""
    digest = hashlib.sha256()
    for name in sorted(p.name for p in HOST_SRC.iterdir() if p.suffix in (".go", ".mod", ".sum")):
        digest.update(name.encode() + b"\0" + (HOST_SRC / name).read_bytes())
    binary = cache_dir() / f"benchhost-{digest.hexdigest()[:16]}"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise BenchError("the benchmark host is written in Go and no `go` is on PATH "
                         "(install Go 1.22 or later)")
    binary.parent.mkdir(parents=True, exist_ok=True)
    log(f"building the benchmark host into {binary} ...")
    tmp = binary.with_suffix(".tmp")
    proc = subprocess.run([go, "build", "-o", str(tmp), "."], cwd=HOST_SRC,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"go build of benchmarks/host failed:\n{proc.stderr.strip()}")
    tmp.replace(binary)
    return binary


@dataclass
class Runner:
    """Starts one host process per measurement, each with names of its own."""

    host: Path
    run_id: str
    logdir: Path
    ours: Path = ROOT
    counter: int = 0

    def _names(self) -> dict[str, str]:
        self.counter += 1
        stem = f"{self.run_id}{self.counter}"
        return {"plugin": f"bp{stem}", "function": f"bf{stem}", "prefix": f"br{stem}"}

    def command(self, impl: str, plugin_file: Path | None = None) -> list[str]:
        if impl == "go":
            return [str(self.host), "peer"]
        if impl == "ceiling":
            return [sys.executable, "-u", str(PLUGINS / "bare_plugin.py")]
        # The official SDK runs in an environment of its own (it pins pynng 0.8.1).
        python = official_python() if impl == "official" else sys.executable
        return [python, "-u", str(plugin_file or PLUGINS / "bench_plugin.py")]

    def run(self, impl: str, scenario: str, *, n: int = 0, trials: int = 0, ack: bool = False,
            symbol: str = "bench", plugin_file: Path | None = None,
            timeout: float = 180.0) -> dict[str, Any]:
        names = self._names()
        argv = [str(self.host), "host", "-scenario", scenario, "-plugin", names["plugin"],
                "-function", names["function"], "-prefix", names["prefix"], "-symbol", symbol,
                "-log", str(self.logdir / f"{names['plugin']}-{impl}-{scenario}.log")]
        if n:
            argv += ["-n", str(n)]
        if trials:
            argv += ["-trials", str(trials)]
        if ack:
            argv.append("-ack")
        cmd = self.command(impl, plugin_file)
        if impl == "go":
            cmd += ["-plugin", names["plugin"]]
        env = dict(os.environ, BENCH_SDK=impl, BENCH_PLUGIN=names["plugin"],
                   BENCH_FUNCTION=names["function"],
                   # the SDK of this working tree (or --ours), whatever else is installed
                   PYTHONPATH=os.pathsep.join(filter(None, [str(self.ours),
                                                            os.environ.get("PYTHONPATH")])))
        # A session of its own, so that a hung plugin and its host end together.
        proc = subprocess.Popen(argv + ["--"] + cmd, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise BenchError(f"{impl} {scenario} did not finish within {timeout:g} s") from None
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # anything the host left behind
            except ProcessLookupError:
                pass
            for name in names.values():  # IPC paths are global: leave none behind
                for path in Path("/tmp").glob(f"*{name}*.ipc"):
                    path.unlink(missing_ok=True)
        if proc.returncode != 0:
            raise BenchError(f"{impl} {scenario} failed: {err.strip() or out.strip()} "
                             f"(plugin log: {self.logdir})")
        return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------
# Measurements


@dataclass
class Row:
    """One line of the table: a figure per implementation and per repetition."""

    metric: str
    unit: str
    higher_is_better: bool = True
    values: dict[str, list[float]] = field(default_factory=dict)
    ratios: list[float] = field(default_factory=list)
    note: str = ""

    def add(self, impl: str, value: float) -> None:
        self.values.setdefault(impl, []).append(value)

    def median(self, impl: str) -> float | None:
        vals = self.values.get(impl)
        return statistics.median(vals) if vals else None


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


class Bench:
    """Runs every measurement ``sizes.reps`` times, interleaving the implementations."""

    def __init__(self, runner: Runner, sizes: Sizes, log: Callable[[str], None] = print) -> None:
        self.r = runner
        self.sizes = sizes
        self.log = log
        self.rows: dict[str, Row] = {}
        self.stops: dict[str, dict[str, Any]] = {}
        self.host: dict[str, list[float]] = {}
        #: The plugin process's CPU time per frame or call, all threads, in microseconds.
        self.cpu: dict[str, dict[str, list[float]]] = {}

    def row(self, key: str, metric: str, unit: str, higher: bool = True, note: str = "") -> Row:
        if key not in self.rows:
            self.rows[key] = Row(metric, unit, higher, note=note)
        return self.rows[key]

    def rate(self, key: str, metric: str, scenario: str, n: int, ack: bool = False,
             ours: tuple[Path, str] | None = None, note: str = "") -> None:
        row = self.row(key, metric, "/s", note=note)
        got: dict[str, float] = {}
        for impl in IMPLS:
            kwargs: dict[str, Any] = {"n": n, "ack": ack}
            if impl == "ours" and ours is not None:
                kwargs["plugin_file"], kwargs["symbol"] = ours
            res = self.r.run(impl, scenario, **kwargs)
            got[impl] = res["rate"]
            row.add(impl, res["rate"])
            self.cpu.setdefault(key, {}).setdefault(impl, []).append(res["plugin_cpu_us"])
            if impl == "ours":
                self.host.setdefault(f"{key} host CPU", []).append(res.get("host_cpu", 0.0))
        row.ratios.append(got["ours"] / got["official"])
        self.log(f"  {metric}: official {got['official']:,.0f}/s, ours {got['ours']:,.0f}/s, "
                 f"ceiling {got['ceiling']:,.0f}/s")

    def stop(self, kind: str) -> None:
        for impl in ("official", "ours"):
            res = self.r.run(impl, f"stop-{kind}", trials=self.sizes.stop_trials,
                             timeout=60 + self.sizes.stop_trials * 5)
            acc = self.stops.setdefault(f"{kind}/{impl}", {"latencies": [], "hangs": 0,
                                                           "trials": 0})
            acc["latencies"] += res["latencies_ms"] or []
            acc["hangs"] += res["hangs"]
            acc["trials"] += res["trials"]
            self.log(f"  stop {kind} {impl}: {res['hangs']} of {res['trials']} hung, "
                     f"max {max(res['latencies_ms'] or [0]):.1f} ms")

    def stop_both(self) -> None:
        self.stop("source")
        self.stop("sink")

    def memory(self) -> None:
        idle = self.row("mem_idle", "memory, idle plugin", "MiB", higher=False)
        busy = self.row("mem_10", "memory, 10 running symbols", "MiB", higher=False)
        got: dict[str, dict[str, float]] = {}
        for impl in IMPLS:
            res = self.r.run(impl, "memory")
            got[impl] = res
            idle.add(impl, res["idle_kib"] / 1024)
            busy.add(impl, res["running10_kib"] / 1024)
        idle.ratios.append(got["ours"]["idle_kib"] / got["official"]["idle_kib"])
        busy.ratios.append(got["ours"]["running10_kib"] / got["official"]["running10_kib"])
        self.log(f"  memory idle: official {got['official']['idle_kib'] / 1024:.1f} MiB, "
                 f"ours {got['ours']['idle_kib'] / 1024:.1f} MiB")

    def capacity(self) -> None:
        """The host against a plugin written in Go: what the host itself can take."""
        s = self.sizes
        for scenario, n, key in (("source", max(s.source, 100_000), "source"),
                                 ("sink", max(s.sink, 100_000), "sink"),
                                 ("func", max(s.func, 20_000), "func")):
            res = self.r.run("go", scenario, n=n)
            self.host.setdefault(f"{key} capacity", []).append(res["rate"])

    def run_all(self, only: Sequence[str] = GROUPS) -> None:
        s = self.sizes
        steps: dict[str, Callable[[], None]] = {
            "source": lambda: self.rate("source", f"source, tuples/s ({s.source:,} x 64 B)",
                                        "source", s.source),
            "sink": lambda: self.rate("sink", "sink, bytes, frames/s", "sink", s.sink),
            "sink_ack": lambda: self.rate("sink_ack", "sink, bytes, requireAck", "sink",
                                          s.sink_ack, ack=True),
            "sink_dec": lambda: self.rate("sink_dec", "sink, decoded (official: bytes)", "sink",
                                          s.sink, ours=OURS_DECODED),
            "sink_dec_ack": lambda: self.rate("sink_dec_ack",
                                              "sink, decoded, requireAck (official: bytes)",
                                              "sink", s.sink_ack, ack=True, ours=OURS_DECODED),
            "func": lambda: self.rate("func", "function Exec calls/s", "func", s.func),
            "stop": self.stop_both,
            "memory": self.memory if s.memory else lambda: None,
            "capacity": self.capacity,
        }
        for rep in range(s.reps):
            self.log(f"repetition {rep + 1} of {s.reps}")
            for group in GROUPS:
                if group in only:
                    steps[group]()

    # -- the report

    def table(self) -> str:
        lines = [f"{'metric':46} | {'official':>10} | {'ours':>10} | {'ratio':>6} | "
                 f"{'ceiling':>10}",
                 f"{'-' * 46}-+-{'-' * 10}-+-{'-' * 10}-+-{'-' * 6}-+-{'-' * 10}"]

        def fmt(value: float | None, unit: str) -> str:
            if value is None:
                return "-"
            return f"{value:,.1f} {unit}" if unit != "/s" else f"{value:,.0f}"

        for row in self.rows.values():
            ratio = f"{statistics.median(row.ratios):.2f}" if row.ratios else "-"
            lines.append(f"{row.metric:46} | {fmt(row.median('official'), row.unit):>10} | "
                         f"{fmt(row.median('ours'), row.unit):>10} | {ratio:>6} | "
                         f"{fmt(row.median('ceiling'), row.unit):>10}")
        for kind in ("source", "sink"):
            off, ours = self.stops.get(f"{kind}/official"), self.stops.get(f"{kind}/ours")
            if not off or not ours:
                continue
            for q in (50, 99):
                o = percentile(off["latencies"], q) if off["latencies"] else None
                u = percentile(ours["latencies"], q) if ours["latencies"] else None
                ratio = f"{u / o:.2f}" if o and u else "-"
                lines.append(f"{f'stop {kind} while data flows, p{q}':46} | "
                             f"{fmt(o, 'ms'):>10} | {fmt(u, 'ms'):>10} | {ratio:>6} | {'-':>10}")
            lines.append(f"{f'stop {kind}: stops never answered':46} | "
                         f"{str(off['hangs']) + '/' + str(off['trials']):>10} | "
                         f"{str(ours['hangs']) + '/' + str(ours['trials']):>10} | {'':>6} | "
                         f"{'-':>10}")
        return "\n".join(lines)

    def cpu_table(self) -> str:
        """CPU time of the plugin process per frame: steadier than rates on a busy machine."""
        lines = [f"{'plugin CPU per frame or call (us)':46} | {'official':>10} | {'ours':>10} | "
                 f"{'ratio':>6} | {'ceiling':>10}"]
        for key, per in self.cpu.items():
            med = {impl: statistics.median(v) for impl, v in per.items()}
            ratio = f"{med['ours'] / med['official']:.2f}" if med.get("official") else "-"
            lines.append(f"{self.rows[key].metric:46} | {med.get('official', 0):>10.1f} | "
                         f"{med.get('ours', 0):>10.1f} | {ratio:>6} | "
                         f"{med.get('ceiling', 0):>10.1f}")
        return "\n".join(lines)

    def host_report(self) -> str:
        out = ["host (Go) against a Go plugin, the rate it can take itself:"]
        for key in ("source", "sink", "func"):
            vals = self.host.get(f"{key} capacity")
            if vals:
                out.append(f"  {key:7} {statistics.median(vals):>12,.0f} /s")
        out.append("host CPU share (cores) while measuring ours:")
        for key, vals in self.host.items():
            if key.endswith("host CPU"):
                out.append(f"  {key[:-9]:13} {statistics.median(vals):.2f}")
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        return {"rows": {k: {"metric": r.metric, "unit": r.unit, "values": r.values,
                             "ratios": r.ratios} for k, r in self.rows.items()},
                "stops": self.stops, "host": self.host, "plugin_cpu_us": self.cpu}


def describe_machine(ours: Path = ROOT) -> str:
    import platform

    try:
        import pynng

        pynng_version = getattr(pynng, "__version__", "?")
    except ImportError:
        pynng_version = "not installed"
    try:
        probe_official = subprocess.run(
            [official_python(), "-c", "from importlib.metadata import version as v; "
             "print(v('ekuiper'), 'on pynng', v('pynng'))"], capture_output=True, text=True)
        official = probe_official.stdout.strip() or "?"
    except OfficialSDKUnavailable as exc:
        official = f"not installed ({exc})"
    # Asked of the checkout under test, in a process of its own like the plugins.
    probe = subprocess.run(
        [sys.executable, "-c", "from ekuiper_sdk.runtime import codec as p; "
         "print(p.codec().name if hasattr(p, 'codec') else 'json')"],
        capture_output=True, text=True, cwd="/", env=dict(os.environ, PYTHONPATH=str(ours)))
    codec = probe.stdout.strip() or "?"
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return (f"{platform.python_implementation()} {platform.python_version()}, pynng "
            f"{pynng_version}, ekuiper {official}, JSON codec {codec}; {os.cpu_count()} CPUs "
            f"({cpu}); load average {load:.2f} at the start")


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks``.

    >>> build_parser().parse_args(["--kuiperd", "bin/kuiperd", "--quick"]).kuiperd
    PosixPath('bin/kuiperd')
    """
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="one short repetition (with a server: one round of 2 windows)")
    parser.add_argument("--tiny", action="store_true",
                        help="a few hundred frames (smoke test; with a server: one 1 s window)")
    parser.add_argument("--reps", type=int, help="repetitions (medians are reported)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the plugins' logs (with --kuiperd: the server's folder)")
    parser.add_argument("--only", help="comma-separated measurements: " + ",".join(GROUPS)
                        + "; with a server: source,function,sink,sink_each,idle")
    parser.add_argument("--ours", type=Path, default=ROOT,
                        help="the checkout whose ekuiper_sdk is measured as 'ours' "
                             "(default: this one), to compare a change")
    server = parser.add_mutually_exclusive_group()
    server.add_argument("--ekuiper", metavar="URL",
                        help="run the same plugins through the real eKuiper server at URL "
                             "(REST API, on this machine) instead of the Go host")
    server.add_argument("--kuiperd", metavar="PATH", type=Path,
                        help="as --ekuiper, on a private eKuiper that this run starts from "
                             "the kuiperd binary at PATH and removes afterwards")
    parser.add_argument("--kuiperd-etc", metavar="DIR", type=Path,
                        help="with --kuiperd: the etc/ folder to copy (default: the one "
                             "beside the binary's bin/)")
    parser.add_argument("--scale", action="store_true",
                        help="with a server: how the plugin's cost grows with its rules "
                             "(see benchmarks/scale.py)")
    parser.add_argument("--rules", metavar="N,N,...",
                        help="with --scale: the rule counts (default 1,10,100,500)")
    parser.add_argument("--go-plugin", metavar="PATH", type=Path,
                        help="with --scale: also measure this plugin binary built with "
                             "eKuiper's Go SDK")
    parser.add_argument("--supervised", action="store_true",
                        help="with --scale: also measure ours with supervise=True")
    parser.add_argument("--ekuiper-python-version", default="3.11",
                        help="with --ekuiper: the Python version of that server's plugins "
                             "(default 3.11)")
    return parser


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[str, ...]:
    """The measurements ``--only`` picks for the mode chosen; a usage error for the rest."""
    from .ekuiper import PATHS

    real = bool(args.ekuiper or args.kuiperd)
    if args.kuiperd_etc and not args.kuiperd:
        parser.error("--kuiperd-etc needs --kuiperd")
    if args.scale:
        return check_scale_args(parser, args, real)
    for option, given in (("--rules", args.rules), ("--go-plugin", args.go_plugin),
                          ("--supervised", args.supervised)):
        if given:
            parser.error(f"{option} needs --scale")
    choices = PATHS if real else GROUPS
    only = tuple(args.only.split(",")) if args.only else choices
    unknown = set(only) - set(choices)
    if unknown:
        parser.error(f"unknown measurement(s) {', '.join(sorted(unknown))}; "
                     f"choose from {', '.join(choices)}")
    return only


def check_scale_args(parser: argparse.ArgumentParser, args: argparse.Namespace,
                     real: bool) -> tuple[str, ...]:
    """``--scale`` runs through a server, with every rule count valid and the Go plugin
    there; ``--rules`` gets its default."""
    from .scale import DEFAULT_RULES, parse_rules

    if not real:
        parser.error("--scale needs a server: --kuiperd PATH or --ekuiper URL")
    if args.only:
        parser.error("--only does not apply to --scale (use --rules)")
    args.rules = args.rules or ",".join(map(str, DEFAULT_RULES))
    try:
        parse_rules(args.rules)
    except ValueError as exc:
        parser.error(str(exc))
    if args.go_plugin and not os.access(args.go_plugin, os.X_OK):
        parser.error(f"--go-plugin {args.go_plugin}: no executable file there; pass a plugin "
                     "binary built with eKuiper's Go SDK")
    return ()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    only = check_args(parser, args)
    if args.ekuiper or args.kuiperd:
        from .ekuiper import main as ekuiper_main

        try:
            return ekuiper_main(args)
        except RuntimeError as exc:  # a failed step (REST, server start) in one line
            print(f"benchmark: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("benchmark: interrupted", file=sys.stderr)
            return 130
    sizes = TINY if args.tiny else QUICK if args.quick else FULL
    if args.reps:
        sizes = Sizes(**{**sizes.__dict__, "reps": args.reps})
    try:
        host = build_host()
        official_python()
    except (BenchError, OfficialSDKUnavailable) as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 2
    # Byte-compile the SDK under test as installing it would: the official package comes
    # compiled from its wheel, and compiling at import costs a plugin ~1.5 MB resident
    # (where PYTHONDONTWRITEBYTECODE is set, every start would pay it).
    compileall.compile_dir(str(args.ours.resolve() / "ekuiper_sdk"), quiet=2)
    logdir = Path(f"/tmp/ekuiper-bench-{os.getpid()}")
    logdir.mkdir(exist_ok=True)
    runner = Runner(host, secrets.token_hex(2), logdir, ours=args.ours.resolve())
    bench = Bench(runner, sizes)
    print(describe_machine(args.ours.resolve()))
    started = time.monotonic()
    try:
        bench.run_all(only)
    except BenchError as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.keep_logs:
            shutil.rmtree(logdir, ignore_errors=True)
    print()
    print(f"medians of {sizes.reps} repetition(s); ratio = ours / official, "
          f"median of the per-repetition ratios; {time.monotonic() - started:.0f} s")
    print(bench.table())
    print()
    print(bench.cpu_table())
    print()
    print(bench.host_report())
    if args.json:
        args.json.write_text(json.dumps(bench.to_json(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
