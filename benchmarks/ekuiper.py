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
--vendor``). The server must run on this machine (CPU is read from ``/proc``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
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


def pack(name: str, sdk: str, out: Path, python_version: str) -> Path:
    """A plugin zip of the template named ``name``; ours vendors ekuiper-sdk.

    The floor (``sdk == "bare"``) is packed the same way as ours, so that it runs on the
    same vendored pynng."""
    folder = out / name
    (folder / "sources").mkdir(parents=True)
    if sdk == FLOOR:
        (folder / f"{name}.py").write_text(FLOOR_TEMPLATE.read_text())
        (folder / f"{name}.json").write_text(json.dumps({
            "version": "v1.0.0", "language": "python", "executable": f"{name}.py",
            "sinks": [f"{name}_sink"]}))
        return _pack_vendored(folder, out / f"{name}.zip", python_version)
    (folder / f"{name}.py").write_text(TEMPLATE.read_text())
    (folder / f"{name}.json").write_text(json.dumps({
        "version": "v1.0.0", "language": "python", "executable": f"{name}.py",
        "sources": [f"{name}_src"],
        "sinks": [f"{name}_sink"] + ([] if sdk == "official" else [f"{name}_each"]),
        "functions": [f"{name}_fn"]}))
    (folder / "sources" / f"{name}_src.yaml").write_text(
        f"default:\n  rate: 0\nfeed:\n  rate: {FEED_RATE}\nidle:\n  idle: true\n")
    target = out / f"{name}.zip"
    if sdk == "official":
        with zipfile.ZipFile(target, "w") as zf:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(folder).as_posix())
        return target
    return _pack_vendored(folder, target, python_version)


def _pack_vendored(folder: Path, target: Path, python_version: str) -> Path:
    subprocess.run([sys.executable, "-m", "ekuiper_sdk.tools.cli", "pack", str(folder), "--vendor",
                    "--no-code", "--python-version", python_version, "-o", str(target)],
                   check=True, capture_output=True, timeout=600)
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


def cpu_ms(pid: int) -> float:
    """CPU time of every live thread of ``pid``, in ms (schedstat: ns resolution)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e6


def switches(pid: int) -> int:
    """Context switches (voluntary and not) of every live thread of ``pid``."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                total += sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
        except OSError:
            pass
    return total


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


class EkuiperBench:
    """Installs the plugins, runs each path's rule for ``windows`` windows, reports."""

    def __init__(self, server: Server, window_s: float, windows: int, python_version: str,
                 log: Callable[[str], None] = print) -> None:
        self.server = server
        self.window_s = window_s
        self.windows = windows
        self.python_version = python_version
        self.log = log
        tag = f"{os.getpid() % 100000}"
        self.names = {sdk: f"kb{tag}_{sdk}" for sdk in (*SDKS, FLOOR)}
        self.feeder = f"kb{tag}_feed"
        self.results: dict[str, dict[str, list[float]]] = {}
        self._rules: list[str] = []
        self._streams: list[str] = []

    def install(self) -> None:
        with tempfile.TemporaryDirectory(prefix="ekuiper-bench-") as tmp:
            for name, sdk in [*((self.names[sdk], sdk) for sdk in (*SDKS, FLOOR)),
                              (self.feeder, "ours")]:
                zipped = pack(name, sdk, Path(tmp), self.python_version)
                self.log(f"installing {name} ({sdk})")
                self.server.call("POST", "/plugins/portables",
                                 {"name": name, "file": f"file://{zipped}"})
        feed = self._stream(self.feeder, "feed")
        self.feed_stream = feed

    def _stream(self, plugin: str, conf: str) -> str:
        stream = f"{plugin}_{conf}"
        self.server.quietly("DELETE", f"/streams/{stream}")
        self.server.call("POST", "/streams", {"sql": (
            f'CREATE STREAM {stream} () WITH (TYPE="{plugin}_src", FORMAT="json", '
            f'CONF_KEY="{conf}", DATASOURCE="x")')})
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

    def measure(self, sdk: str, path: str) -> None:
        name = self.names[sdk]
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
            time.sleep(3.0)  # the rule settles
            for _ in range(self.windows):
                a_cpu, a_cs, a_n = cpu_ms(pid), switches(pid), count() if count else 0
                t0 = time.monotonic()
                time.sleep(self.window_s)
                b_cpu, b_cs, b_n = cpu_ms(pid), switches(pid), count() if count else 0
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
                        self.measure(sdk, path)
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        for rule_id in self._rules:
            self.server.quietly("DELETE", f"/rules/{rule_id}")
        for stream in self._streams:
            self.server.quietly("DELETE", f"/streams/{stream}")
        for name in [*self.names.values(), self.feeder]:
            self.server.quietly("DELETE", f"/plugins/portables/{name}")

    def table(self) -> str:
        def med(key: str, what: str) -> float | None:
            values = self.results.get(key, {}).get(what)
            return statistics.median(values) if values else None

        def fmt(value: float | None, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        def cell(path: str, sdk: str) -> tuple[str, float | None]:
            key = f"{path}/{sdk}"
            if path == "idle":
                cpu = med(key, "cpu_ms_per_s")
                return (f"{fmt(cpu, '.2f')} ms CPU/s, "
                        f"{fmt(med(key, 'switches_per_s'), '.1f')} switches/s"), cpu
            cpu = med(key, "cpu_us")
            return (f"{fmt(med(key, 'rate'), ',.0f')} rec/s, {fmt(cpu, '.1f')} µs CPU/rec, "
                    f"{fmt(med(key, 'switches'), '.2f')} switches/rec"), cpu

        lines = ["| path | official | ours | ours/official CPU |", "|---|---|---|---|"]
        for path in PATHS:
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


def main(url: str, quick: bool, python_version: str, json_out: Path | None = None) -> int:
    """Run the real-eKuiper benchmark against ``url`` and print its table."""
    bench = EkuiperBench(Server(url), window_s=4.0 if quick else 6.0,
                         windows=2 if quick else 3, python_version=python_version)
    bench.run(rounds=1 if quick else 2)
    print(bench.table())
    if json_out is not None:
        json_out.write_text(json.dumps(bench.results, indent=1))
    return 0
