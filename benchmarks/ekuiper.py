"""The same plugin on both SDKs, through a real eKuiper server (``--ekuiper URL``).

What users see: eKuiper starts the plugins, feeds them and reads them. For each SDK the
benchmark installs ``plugins/ekuiper_bench.py`` as a plugin of its own, plus a feeder
plugin (on ekuiper-sdk) whose source paces tuples into the function and sink cases, so
the plugin measured runs only the symbol under test. Per path it reports the rate and the
plugin process's CPU time per record, read from ``/proc/<pid>/task/*/schedstat`` (the
pid found from the process list by the plugin's executable path), over windows of a
running rule; the idle case is a rule with a source that never emits, the function and
the sink, and reports CPU per second. Medians over windows; SDKs alternate. Next to
the two SDKs, the sink cases also run ``plugins/bare_sink.py``, a plain pynng receive
loop with no SDK: the floor of a Python sink on the same pynng. Every case also reports
the plugin's context switches per record (``/proc/<pid>/task/*/status``), which a busy
machine moves far less than CPU time.

The server's Python must be able to import ``ekuiper`` (the official SDK) for the
official plugin; ekuiper-sdk is shipped in the plugin's zip (``ekuiper-plugin pack
--vendor``). The server must run on this machine (CPU is read from ``/proc``). With
``--kuiperd PATH`` instead of a URL, the run starts a server of its own
(:mod:`benchmarks.kuiperd`) whose plugins start with the official SDK's own Python
(:mod:`benchmarks.official_sdk`), as a user of either SDK would set it up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "plugins" / "ekuiper_bench.py"
FLOOR_TEMPLATE = HERE / "plugins" / "bare_sink.py"
SDKS = ("official", "ours")
#: The plain pynng loop, measured on the sink path only.
FLOOR = "bare"
PATHS = ("source", "function", "sink", "sink_each", "idle")
LABELS = {"source": "source -> nop sink", "function": "function, `SELECT fn(data)`",
          "sink": "sink, bytes", "sink_each": 'sink, records="each"',
          "idle": "idle rule: source, function, sink"}
#: The feeder's pace for the function and sink cases, tuples a second.
FEED_RATE = 10_000


@dataclass(frozen=True)
class Plan:
    """How long each path is measured: ``windows`` windows of ``window_s`` seconds after
    ``settle_s`` seconds of a running rule, in each of ``rounds`` rounds."""

    window_s: float
    windows: int
    rounds: int
    settle_s: float = 3.0


FULL = Plan(window_s=6.0, windows=3, rounds=2)
QUICK = Plan(window_s=4.0, windows=2, rounds=1)
#: A smoke test of the mode: the figures are real but too short to compare.
TINY = Plan(window_s=1.0, windows=1, rounds=1, settle_s=2.0)


def plan_for(quick: bool, tiny: bool) -> Plan:
    """The plan of ``--quick`` or ``--tiny`` (tiny wins), else the full one.

    >>> plan_for(quick=True, tiny=False) == QUICK
    True
    """
    return TINY if tiny else QUICK if quick else FULL


def bench_tag(url: str, pid: int | None = None) -> str:
    """The prefix of every plugin, function, stream and rule name a run makes.

    IPC socket paths in ``/tmp`` are global and every server makes them from these names,
    so the prefix names the server's port and this process, unique on the machine.

    >>> bench_tag("http://127.0.0.1:9081", pid=42)
    'kb9081p42'
    """
    port = urllib.parse.urlsplit(url).port or 0
    return f"kb{port}p{os.getpid() if pid is None else pid}"


class Server:
    """REST calls to one eKuiper server."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def call(self, method: str, path: str, body: object = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"eKuiper {method} {path}: {exc.code} "
                               f"{exc.read().decode()[:200]}") from None
        try:
            return json.loads(text)
        except ValueError:
            return text

    def quietly(self, method: str, path: str) -> None:
        try:
            self.call(method, path)
        except RuntimeError:
            pass


def pack(name: str, sdk: str, out: Path, python_version: str, *, feed_rate: int = FEED_RATE,
         sdk_tree: Path | None = None) -> Path:
    """A plugin zip of the template named ``name``; ours vendors ekuiper-sdk.

    The floor (``sdk == "bare"``) is packed the same way as ours, so that it runs on the
    same vendored pynng. ``feed_rate`` is the pace of the source's ``feed`` configuration;
    ``sdk_tree`` a checkout whose ekuiper-sdk is vendored (default: the one installed)."""
    folder = out / name
    (folder / "sources").mkdir(parents=True)
    if sdk == FLOOR:
        (folder / f"{name}.py").write_text(FLOOR_TEMPLATE.read_text())
        (folder / f"{name}.json").write_text(json.dumps({
            "version": "v1.0.0", "language": "python", "executable": f"{name}.py",
            "sinks": [f"{name}_sink"]}))
        return _pack_vendored(folder, out / f"{name}.zip", python_version, sdk_tree)
    (folder / f"{name}.py").write_text(TEMPLATE.read_text())
    (folder / f"{name}.json").write_text(json.dumps({
        "version": "v1.0.0", "language": "python", "executable": f"{name}.py",
        "sources": [f"{name}_src"],
        "sinks": [f"{name}_sink"] + ([] if sdk == "official" else [f"{name}_each"]),
        "functions": [f"{name}_fn"]}))
    (folder / "sources" / f"{name}_src.yaml").write_text(
        f"default:\n  rate: 0\nfeed:\n  rate: {feed_rate}\nidle:\n  idle: true\n")
    target = out / f"{name}.zip"
    if sdk == "official":
        with zipfile.ZipFile(target, "w") as zf:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(folder).as_posix())
        return target
    return _pack_vendored(folder, target, python_version, sdk_tree)


def _pack_vendored(folder: Path, target: Path, python_version: str,
                   sdk_tree: Path | None = None) -> Path:
    env = dict(os.environ)
    cwd = None
    if sdk_tree is not None:  # its packer packs its SDK: the first on the path wins
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(sdk_tree),
                                                          env.get("PYTHONPATH")]))
        # `python -m` puts the working directory before PYTHONPATH: run from the tree, or
        # a checkout we run from would be packed instead.
        cwd = str(sdk_tree)
    subprocess.run([sys.executable, "-m", "ekuiper_sdk.tools.cli", "pack", str(folder), "--vendor",
                    "--no-code", "--python-version", python_version, "-o", str(target)],
                   check=True, capture_output=True, timeout=600, env=env, cwd=cwd)
    return target


def plugin_pid(name: str) -> int:
    """The pid of the process eKuiper started for plugin ``name``: its executable is in
    ``.../portable/<name>/`` (the script itself, or the launcher ``pack --vendor`` writes)."""
    folder = f"/portable/{name}/".encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if any(folder in arg and arg.endswith(b".py") for arg in args[1:3]):
                return int(entry)
    raise LookupError(f"no running process for plugin {name}")


def thread_totals(pid: int) -> tuple[float, int]:
    """CPU time in ms (schedstat: ns resolution) and context switches (voluntary and not)
    of every live thread of ``pid``."""
    cpu_ns = switched = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                cpu_ns += int(f.read().split()[0])
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                switched += sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
        except OSError:
            pass  # the thread ended meanwhile
    return cpu_ns / 1e6, switched


def renamed_zip(source: Path, old: str, new: str, target: Path) -> Path:
    """A copy of a plugin zip for plugin ``new``: ``old`` renamed in every entry's name and
    in every file but the wheels (the manifest, the script, its yaml, the launcher).

    >>> import io, tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with zipfile.ZipFile(folder / "a.zip", "w") as zf:
    ...     zf.writestr("kb_ours.json", '{"executable": "kb_ours.py"}')
    >>> out = renamed_zip(folder / "a.zip", "kb_ours", "kb_ours_sink1", folder / "b.zip")
    >>> zipfile.ZipFile(out).read("kb_ours_sink1.json")
    b'{"executable": "kb_ours_sink1.py"}'
    """
    with zipfile.ZipFile(source) as zin, \
            zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if not info.filename.endswith(".whl"):
                data = data.replace(old.encode(), new.encode())
            entry = zipfile.ZipInfo(info.filename.replace(old, new), info.date_time)
            entry.external_attr = info.external_attr
            entry.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(entry, data)
    return target


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    give_up = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except (LookupError, RuntimeError):
            pass
        if time.monotonic() > give_up:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.5)


def install_plugin(server: Server, name: str, zipped: Path) -> None:
    """Install the plugin zip at ``zipped`` as ``name`` (the server reads the file)."""
    server.call("POST", "/plugins/portables", {"name": name, "file": f"file://{zipped}"})


def create_stream(server: Server, plugin: str, conf: str) -> str:
    """A stream on ``plugin``'s source with its configuration ``conf``; its name."""
    stream = f"{plugin}_{conf}"
    server.quietly("DELETE", f"/streams/{stream}")
    server.call("POST", "/streams", {"sql": (
        f'CREATE STREAM {stream} () WITH (TYPE="{plugin}_src", FORMAT="json", '
        f'CONF_KEY="{conf}", DATASOURCE="x")')})
    return stream


class EkuiperBench:
    """Installs the plugins, runs each path's rule for ``windows`` windows, reports."""

    def __init__(self, server: Server, window_s: float, windows: int, python_version: str,
                 log: Callable[[str], None] = print, *, settle_s: float = 3.0,
                 tag: str | None = None) -> None:
        self.server = server
        self.window_s = window_s
        self.windows = windows
        self.settle_s = settle_s
        self.python_version = python_version
        self.log = log
        self.tag = tag or bench_tag(server.url)
        self.names = {sdk: f"{self.tag}_{sdk}" for sdk in (*SDKS, FLOOR)}
        self.feeder = f"{self.tag}_feed"
        self.results: dict[str, dict[str, list[float]]] = {}
        self._rules: list[str] = []
        self._streams: list[str] = []
        self._plugins: list[str] = []
        self._zips: dict[str, Path] = {}
        self._zip_dir: Path | None = None

    def install(self) -> None:
        """Pack each SDK's plugin once, and install the feeder.

        Each measurement installs a copy of its SDK's zip under a name of its own
        (:meth:`_install_copy`), so that every path runs in a fresh plugin process: a
        process that earlier rules left broken or busy (the official SDK's after a stopped
        sink, docs/performance.md) never weighs on the next figure.
        """
        self._zip_dir = Path(tempfile.mkdtemp(prefix="ekuiper-bench-"))
        for sdk in (*SDKS, FLOOR):
            self.log(f"packing {self.names[sdk]} ({sdk})")
            self._zips[sdk] = pack(self.names[sdk], sdk, self._zip_dir, self.python_version)
        feeder = pack(self.feeder, "ours", self._zip_dir, self.python_version)
        self.log(f"installing {self.feeder} (ours)")
        self._install(self.feeder, feeder)
        self.feed_stream = self._stream(self.feeder, "feed")

    def _install(self, name: str, zipped: Path) -> None:
        install_plugin(self.server, name, zipped)
        self._plugins.append(name)

    def _install_copy(self, sdk: str, suffix: str) -> str:
        """Install ``sdk``'s plugin again as ``<its name>_<suffix>``; the new name."""
        name = f"{self.names[sdk]}_{suffix}"
        self._install(name, renamed_zip(self._zips[sdk], self.names[sdk], name,
                                        self._zip_dir / f"{name}.zip"))
        return name

    def _stream(self, plugin: str, conf: str) -> str:
        stream = create_stream(self.server, plugin, conf)
        self._streams.append(stream)
        return stream

    def _rule(self, rule_id: str, sql: str, action: dict[str, Any]) -> None:
        self.server.quietly("DELETE", f"/rules/{rule_id}")
        self.server.call("POST", "/rules", {"id": rule_id, "sql": sql, "actions": [action],
                                            "options": {"bufferLength": 10240}})
        self._rules.append(rule_id)

    def _counter(self, rule_id: str, key: str) -> Callable[[], int]:
        def read() -> int:
            status = self.server.call("GET", f"/rules/{rule_id}/status")
            return int(status[key])
        return read

    def measure(self, sdk: str, path: str, run: int = 0) -> None:
        """Measure ``path`` on a fresh copy of ``sdk``'s plugin (``run`` tells copies apart)."""
        name = self._install_copy(sdk, f"{path.replace('_', '')}{run}")
        rule_id = f"{name}_{path}"
        if path == "source":
            stream = self._stream(name, "default")
            self._rule(rule_id, f"SELECT * FROM {stream}", {"nop": {}})
            count = self._counter(rule_id, f"source_{stream}_0_records_in_total")
        elif path == "function":
            self._rule(rule_id, f"SELECT {name}_fn(data) AS d FROM {self.feed_stream}",
                       {"nop": {}})
            count = self._counter(rule_id, "sink_nop_0_0_records_in_total")
        elif path in ("sink", "sink_each"):
            sink = f"{name}_{path[5:] or 'sink'}"
            self._rule(rule_id, f"SELECT * FROM {self.feed_stream}", {sink: {"sendSingle": True}})
            count = self._counter(rule_id, f"sink_{sink}_0_0_records_out_total")
        else:
            stream = self._stream(name, "idle")
            self._rule(rule_id, f"SELECT {name}_fn(data) AS d FROM {stream}",
                       {f"{name}_sink": {}})
            count = None
        try:
            pid = wait_for(lambda: plugin_pid(name), f"plugin {name}")
            time.sleep(self.settle_s)  # the rule settles
            for _ in range(self.windows):
                (a_cpu, a_cs), a_n = thread_totals(pid), count() if count else 0
                t0 = time.monotonic()
                time.sleep(self.window_s)
                (b_cpu, b_cs), b_n = thread_totals(pid), count() if count else 0
                dt = time.monotonic() - t0
                got = self.results.setdefault(f"{path}/{sdk}", {})
                if count is None:
                    got.setdefault("cpu_ms_per_s", []).append((b_cpu - a_cpu) / dt)
                    got.setdefault("switches_per_s", []).append((b_cs - a_cs) / dt)
                elif b_n > a_n:
                    got.setdefault("rate", []).append((b_n - a_n) / dt)
                    got.setdefault("cpu_us", []).append((b_cpu - a_cpu) * 1000 / (b_n - a_n))
                    got.setdefault("switches", []).append((b_cs - a_cs) / (b_n - a_n))
        finally:
            self.server.quietly("DELETE", f"/rules/{rule_id}")
            self.server.quietly("DELETE", f"/plugins/portables/{name}")

    def run(self, paths: tuple[str, ...] = PATHS, rounds: int = 2) -> None:
        self.install()
        try:
            for rnd in range(rounds):
                for path in paths:
                    order = SDKS if rnd % 2 == 0 else SDKS[::-1]
                    if path == "sink":
                        order = (*order, FLOOR)
                    for sdk in order:
                        if path == "sink_each" and sdk == "official":
                            continue  # the official SDK passes bytes only
                        self.log(f"round {rnd + 1}: {path} on {sdk}")
                        self.measure(sdk, path, rnd + 1)
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        for rule_id in self._rules:
            self.server.quietly("DELETE", f"/rules/{rule_id}")
        for stream in self._streams:
            self.server.quietly("DELETE", f"/streams/{stream}")
        for name in self._plugins:
            self.server.quietly("DELETE", f"/plugins/portables/{name}")
        if self._zip_dir is not None:
            shutil.rmtree(self._zip_dir, ignore_errors=True)
        # eKuiper v2.4 leaves the control and function sockets of a deleted plugin in /tmp
        # (seen on a real server); every name in them starts with this run's tag.
        for path in Path("/tmp").glob(f"*{self.tag}_*.ipc"):
            path.unlink(missing_ok=True)

    def table(self) -> str:
        """The Markdown table of the medians; ``-`` where nothing was measured.

        >>> b = EkuiperBench(Server("http://127.0.0.1:1"), 1.0, 1, "3.11", tag="kbt")
        >>> b.results = {"idle/official": {"cpu_ms_per_s": [0.5, 0.25, 2.0]},
        ...              "idle/ours": {"cpu_ms_per_s": [0.5]}}
        >>> print(b.table())
        | path | official | ours | ours/official CPU |
        |---|---|---|---|
        | idle rule: source, function, sink | 0.50 ms CPU/s | 0.50 ms CPU/s | 1.00 |
        """

        def med(key: str, what: str) -> float | None:
            values = self.results.get(key, {}).get(what)
            return statistics.median(values) if values else None

        def fmt(value: float | None, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        def cell(path: str, sdk: str) -> tuple[str, float | None]:
            key = f"{path}/{sdk}"
            if key not in self.results:
                return "-", None
            if path == "idle":
                cpu, switched = med(key, "cpu_ms_per_s"), med(key, "switches_per_s")
                text = f"{fmt(cpu, '.2f')} ms CPU/s"
                return text + (f", {switched:.1f} switches/s" if switched is not None else ""), cpu
            cpu, switched = med(key, "cpu_us"), med(key, "switches")
            text = f"{fmt(med(key, 'rate'), ',.0f')} rec/s, {fmt(cpu, '.1f')} µs CPU/rec"
            return text + (f", {switched:.2f} switches/rec" if switched is not None else ""), cpu

        lines = ["| path | official | ours | ours/official CPU |", "|---|---|---|---|"]
        for path in PATHS:
            if not any(f"{path}/{sdk}" in self.results for sdk in SDKS):
                continue  # not measured (--only)
            (official, off_cpu), (ours, our_cpu) = cell(path, "official"), cell(path, "ours")
            ratio = f"{our_cpu / off_cpu:.2f}" if off_cpu and our_cpu is not None else "-"
            lines.append(f"| {LABELS[path]} | {official} | {ours} | {ratio} |")
        floor, floor_cpu = cell("sink", FLOOR)
        if floor_cpu:
            lines.append(f"\nfloor, a plain pynng receive loop (sink, bytes): {floor}")
        each, raw = med("sink_each/ours", "cpu_us"), med("sink/ours", "cpu_us")
        official = med("sink/official", "cpu_us")
        if raw and floor_cpu:
            lines.append(f"ours / floor, CPU per frame: {raw / floor_cpu:.2f}")
        if raw and official:
            lines.append(f"official / ours, CPU per frame (sink, bytes): {official / raw:.2f}")
        if each and raw:
            lines.append(f"ours, records=\"each\" / bytes, CPU per frame: {each / raw:.2f}")
        return "\n".join(lines)


def server_python_version(python: str) -> str:
    """``X.Y`` of an interpreter, for the wheels ``pack --vendor`` ships to it."""
    proc = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"cannot run {python}: {proc.stderr.strip()[-200:]}")
    return proc.stdout.strip()


def describe(server: Server, python_version: str) -> str:
    """One line on the server and the machine, printed above the table."""
    try:
        version = server.call("GET", "/").get("version", "?")
    except (RuntimeError, AttributeError):
        version = "?"
    load = os.getloadavg()[0]
    return (f"eKuiper {version} at {server.url}, plugins on Python {python_version}; "
            f"{os.cpu_count()} CPUs; load average {load:.2f} at the start")


def run_bench(server: Server, plan: Plan, python_version: str, paths: tuple[str, ...],
              json_out: Path | None, tag: str | None = None) -> int:
    bench = EkuiperBench(server, window_s=plan.window_s, windows=plan.windows,
                         python_version=python_version, settle_s=plan.settle_s, tag=tag)
    print(describe(server, python_version))
    started = time.monotonic()
    bench.run(paths, rounds=plan.rounds)
    print(f"\nmedians of {plan.rounds * plan.windows} window(s) of {plan.window_s:g} s per "
          f"path and SDK; {time.monotonic() - started:.0f} s")
    print(bench.table())
    if json_out is not None:
        json_out.write_text(json.dumps(bench.results, indent=1))
    return 0


def _terminate(signum: int, frame: object) -> None:
    print("benchmark: terminated; stopping the private eKuiper", file=sys.stderr)
    raise SystemExit(128 + signum)  # unwinds through the private server's ``with``


def main(args: argparse.Namespace) -> int:
    """Run the real-eKuiper benchmark for ``python -m benchmarks --ekuiper/--kuiperd``.

    Example::

        main(build_parser().parse_args(["--kuiperd", "/opt/ekuiper/bin/kuiperd", "--quick"]))
    """
    plan = plan_for(args.quick, args.tiny)
    paths = tuple(args.only.split(",")) if args.only else PATHS

    def bench(server: Server, python_version: str, tag: str | None = None) -> int:
        if getattr(args, "scale", False):
            from .scale import FULL as SCALE_FULL
            from .scale import TINY as SCALE_TINY
            from .scale import run_scale

            return run_scale(server, SCALE_TINY if args.tiny else SCALE_FULL, python_version,
                             args, tag)
        return run_bench(server, plan, python_version, paths, args.json, tag)

    if args.ekuiper:
        return bench(Server(args.ekuiper), args.ekuiper_python_version)
    from .kuiperd import PrivateKuiperd, check_binary, find_etc
    from .official_sdk import official_python

    find_etc(check_binary(args.kuiperd), args.kuiperd_etc)  # before a slow first install
    python = official_python()  # the official SDK's own; ours ships in its zip
    signal.signal(signal.SIGTERM, _terminate)
    with PrivateKuiperd(args.kuiperd, python, args.kuiperd_etc, keep=args.keep_logs) as kuiperd:
        tag = bench_tag(kuiperd.url)
        kuiperd.add_ipc_marker(tag)
        print(f"private eKuiper at {kuiperd.url}, folder {kuiperd.run_dir}")
        return bench(Server(kuiperd.url), server_python_version(python), tag)
