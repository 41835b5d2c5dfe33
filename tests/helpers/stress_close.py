"""Stress: concurrent stops and socket closes across many sockets, with data flowing.

Each cycle starts the ``reliable`` test plugin under :class:`ekuiper_sdk.testing.PluginHost`,
starts several flooding sources, several sinks fed by threads of their own and a function
called in a loop, then stops half of the symbols from their own threads all at once and
closes the host (which stops the rest, kills the plugin and closes every host socket while
the handles' reader threads close theirs). On both sides every socket is closed by the one
thread that uses it, which is the discipline under test.

A cycle that does not finish within ``--cycle-timeout`` seconds is a hang: the child
process running it prints every thread's stack and exits with status 3. The driver runs the
cycles in batches of child processes so that a hang is counted and the run goes on::

    python tests/helpers/stress_close.py --cycles 300            # by hand, on the pynng installed
    python tests/helpers/stress_close.py --cycles 6 --batch 3    # what the suite runs

It prints one line per batch and a summary ``cycles=N hangs=H failures=F pynng=V``; the
exit status is 1 when any cycle hung or failed.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent.parent
PLUGIN = HERE / "plugins" / "reliable" / "reliable.py"
HANG = 3


def _names(tag: str) -> Callable[[str], str]:
    counter = iter(range(1_000_000))
    return lambda kind: f"st{os.getpid()}_{tag}_{kind}{next(counter)}"


def one_cycle(cycle: int, folder: str) -> None:
    from ekuiper_sdk.testing import HostError, PluginHost

    name = _names(f"{cycle}_{random.getrandbits(16):x}")
    plugin = name("p")
    prefix = plugin + "_"
    host = PluginHost(plugin, PLUGIN, env={"PLUGIN_NAME": plugin, "FUNC_PREFIX": prefix})
    host.start()
    stopping = threading.Event()
    workers: list[threading.Thread] = []
    try:
        sources = [host.start_source("flood", name("r"),
                                     config={"size": 64, "record": os.path.join(folder, "flood")})
                   for _ in range(4)]
        sinks = [host.start_sink("recorder", name("r"),
                                 config={"record": os.path.join(folder, name("s")),
                                         "requireAck": i % 2 == 0})
                 for i in range(3)]
        echo = host.function(prefix + "echo")

        def feed(sink: object) -> None:
            n = 0
            while not stopping.is_set():
                try:
                    sink.send({"n": n}, ack_timeout=2.0)  # type: ignore[attr-defined]
                except (HostError, OSError):
                    return
                n += 1

        def call() -> None:
            while not stopping.is_set():
                try:
                    echo.call("x")
                except HostError:
                    return

        for sink in sinks:
            workers.append(threading.Thread(target=feed, args=(sink,), daemon=True))
        workers.append(threading.Thread(target=call, daemon=True))
        for worker in workers:
            worker.start()
        for source in sources:
            source.take(20, timeout=5.0)
        time.sleep(random.uniform(0.0, 0.05))
        # Half of the symbols are stopped at the same instant from threads of their own.
        stoppers = [threading.Thread(target=handle.stop, kwargs={"timeout": 2.0}, daemon=True)
                    for handle in (sources[:2] + sinks[:1])]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
    finally:
        stopping.set()
        host.close()            # the rest: stops, kill, closes, while readers close theirs
        for worker in workers:
            worker.join(timeout=5.0)


def _run_cycle(cycle: int, folder: str, done: threading.Event,
               failure: list[BaseException]) -> None:
    try:
        one_cycle(cycle, folder)
    except BaseException as exc:  # noqa: BLE001 - reported by the caller, one line
        failure.append(exc)
    finally:
        done.set()


def child(first: int, count: int, cycle_timeout: float) -> int:
    folder = tempfile.mkdtemp(prefix="stress_close_")
    for cycle in range(first, first + count):
        # A thread stuck inside a C call never returns to the interpreter, so a signal
        # handler cannot report it; faulthandler's watchdog thread can.
        faulthandler.dump_traceback_later(cycle_timeout, exit=False)
        done = threading.Event()
        failure: list[BaseException] = []
        threading.Thread(target=_run_cycle, args=(cycle, folder, done, failure),
                         daemon=True).start()
        if not done.wait(cycle_timeout + 1):
            print(f"cycle {cycle}: HANG", flush=True)
            os._exit(HANG)
        faulthandler.cancel_dump_traceback_later()
        if failure:
            exc = failure[0]
            print(f"cycle {cycle}: FAIL {type(exc).__name__}: {exc}".splitlines()[0], flush=True)
            return 1
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--batch", type=int, default=10, help="cycles per child process")
    parser.add_argument("--cycle-timeout", type=float, default=30.0)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        return child(args.child, args.batch, args.cycle_timeout)

    import pynng

    hangs = failures = 0
    started = time.monotonic()
    for first in range(0, args.cycles, args.batch):
        count = min(args.batch, args.cycles - first)
        cmd = [sys.executable, __file__, "--child", str(first), "--batch", str(count),
               "--cycle-timeout", str(args.cycle_timeout)]
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=count * (args.cycle_timeout + 5) + 30)
        if proc.returncode == HANG:
            hangs += 1
            print(f"cycles {first}-{first + count - 1}: hang; stacks:\n{proc.stderr[-4000:]}")
        elif proc.returncode != 0:
            failures += 1
            print(f"cycles {first}-{first + count - 1}: exit {proc.returncode}: "
                  f"{(proc.stdout + proc.stderr).strip()[-2000:]}")
        else:
            print(f"cycles {first}-{first + count - 1}: ok", flush=True)
    print(f"cycles={args.cycles} hangs={hangs} failures={failures} "
          f"pynng={pynng.__version__} python={sys.version.split()[0]} "
          f"seconds={time.monotonic() - started:.0f}")
    return 1 if hangs or failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
