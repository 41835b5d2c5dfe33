"""What supervision costs, with the same plugin run as one process and supervised.

``python -m benchmarks.supervision [--runs N]`` starts ``plugins/bench_plugin.py`` under
``ekuiper_sdk.testing.PluginHost`` ``N`` times per mode and prints the medians of:

- the time from the process's start to the first source ``start`` answered ``ok``;
- idle memory 3 s later, RSS and PSS summed over the plugin's process and its children
  (PSS shares the pages the processes have in common between them);
- supervised only: from the serving worker's SIGKILL to the first record of the worker
  that replaced it (the source counts from 0 again in a new worker).

The modes are one process (``EKUIPER_SDK_SUPERVISE=0``), supervised with no spare
worker (``EKUIPER_SDK_SPARE_WORKER=0``) and supervised with a spare. One JSON line per
mode, then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from ekuiper_sdk.testing import PluginHost

PLUGIN = Path(__file__).parent / "plugins" / "bench_plugin.py"
MODES = {
    "one-process": {"EKUIPER_SDK_SUPERVISE": "0"},
    "supervised-no-spare": {"EKUIPER_SDK_SUPERVISE": "1", "EKUIPER_SDK_SPARE_WORKER": "0"},
    "supervised-spare": {"EKUIPER_SDK_SUPERVISE": "1", "EKUIPER_SDK_SPARE_WORKER": "1"},
}
IDLE_S = 3.0


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    found = [pid]
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as children:
                for child in children.read().split():
                    found += tree(int(child))
        except OSError:
            pass
    return found


def memory_kib(pid: int) -> tuple[int, int]:
    """RSS and PSS of one process, in KiB."""
    rss = pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


def one_run(mode: str, env: dict[str, str], recover: bool) -> dict[str, Any]:
    name = f"bsup{uuid.uuid4().hex[:8]}"
    host = PluginHost(name, PLUGIN, env={"BENCH_SDK": "ours", "BENCH_PLUGIN": name,
                                         "BENCH_FUNCTION": name + "_f", **env})
    began = time.monotonic()
    host.start()
    try:
        source = host.start_source("bench", f"{name}r", config={"interval": 0.01})
        first_ok = time.monotonic() - began
        source.recv(timeout=10)
        time.sleep(IDLE_S)
        assert host.pid is not None
        pids = tree(host.pid)
        sizes = [memory_kib(pid) for pid in pids]
        result: dict[str, Any] = {
            "mode": mode, "first_ok_ms": first_ok * 1000, "processes": len(pids),
            "rss_mib": sum(r for r, _ in sizes) / 1024,
            "pss_mib": sum(p for _, p in sizes) / 1024,
            "rss_each_mib": [round(r / 1024, 1) for r, _ in sizes]}
        if recover and len(pids) > 1:
            if env.get("EKUIPER_SDK_SPARE_WORKER") == "1":
                host.wait_output("is ready to take over", timeout=30)
                time.sleep(0.5)
            worker = pids[1]  # the first child: the serving worker
            last = source.recv(timeout=10).message["seq"]
            killed = time.monotonic()
            os.kill(worker, signal.SIGKILL)
            while True:
                seq = source.recv(timeout=10).message["seq"]
                if seq < last:
                    break
                last = seq
            result["resume_ms"] = (time.monotonic() - killed) * 1000
        return result
    finally:
        host.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.supervision")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--modes", default=",".join(MODES),
                        help="comma-separated modes (default: all)")
    args = parser.parse_args(argv)
    table = []
    for mode in args.modes.split(","):
        runs = [one_run(mode, MODES[mode], recover=True) for _ in range(args.runs)]
        summary: dict[str, Any] = {"mode": mode, "runs": len(runs)}
        for key in ("first_ok_ms", "rss_mib", "pss_mib", "resume_ms"):
            values = [run[key] for run in runs if key in run]
            if values:
                summary[key] = round(statistics.median(values), 1)
                summary[key + "_range"] = [round(min(values), 1), round(max(values), 1)]
        summary["rss_each_mib"] = runs[len(runs) // 2]["rss_each_mib"]
        print(json.dumps(summary), flush=True)
        table.append(summary)
    print(f"{'mode':24} {'first ok ms':>12} {'RSS MiB':>9} {'PSS MiB':>9} {'resume ms':>10}")
    for row in table:
        print(f"{row['mode']:24} {row['first_ok_ms']:>12.0f} {row['rss_mib']:>9.1f} "
              f"{row['pss_mib']:>9.1f} {row.get('resume_ms', float('nan')):>10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
