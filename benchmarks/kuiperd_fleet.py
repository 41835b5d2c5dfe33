"""N private eKuiper servers on this machine, for trying a rollout by hand.

``python -m benchmarks.kuiperd_fleet --kuiperd PATH -n 10 --python PY --fleet fleet.txt``
starts N servers from one ``kuiperd`` binary, each with its own run folder (laid out as
:mod:`benchmarks.kuiperd` lays out one), its own ports on 127.0.0.1, and its own ``/tmp``:
portable plugins talk to eKuiper over IPC sockets named ``/tmp/plugin_<name>.ipc`` and
so on, so two servers sharing ``/tmp`` would take each other's plugin sockets. Each server
runs in a mount namespace of its own with a private tmpfs on ``/tmp`` (``unshare
--mount``, which needs root or a user namespace). The fleet file lists the servers' REST
URLs. The servers run until Ctrl-C (or SIGTERM), then stop with their plugins, and the run
folders are removed (``--keep`` keeps them, with each server's log).

``--env I:KEY=VALUE`` gives server I (from 0) one more environment variable, which its
plugins inherit: a way to make one server of the fleet differ.

Example::

    python -m benchmarks.kuiperd_fleet --kuiperd /opt/ekuiper/bin/kuiperd -n 10 \\
        --python /usr/bin/python3 --rest-port 9250 --fleet fleet.txt
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .kuiperd import (
    STOP_TIMEOUT,
    KuiperdError,
    Ports,
    check_binary,
    find_etc,
    log_tail,
    prepare_folder,
    server_env,
)

LOG_NAME = "kuiperd.out"
#: The command run in the new mount namespace: a private tmpfs on /tmp, then kuiperd.
NAMESPACE_SCRIPT = 'mount -t tmpfs tmpfs /tmp && exec "$0"'


def namespace_command(kuiperd: Path) -> list[str]:
    """The command line that starts ``kuiperd`` with a ``/tmp`` of its own.

    >>> namespace_command(Path("/r/bin/kuiperd"))[:4]
    ['unshare', '--mount', '--propagation', 'private']
    """
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", NAMESPACE_SCRIPT,
            str(kuiperd)]


def ports_of(index: int, rest: int, cli: int, http: int) -> Ports:
    """Server ``index``'s ports: each base plus the index.

    >>> ports_of(2, 9250, 20650, 10250)
    Ports(rest=9252, cli=20652, http=10252)
    """
    return Ports(rest + index, cli + index, http + index)


def parse_env(values: list[str], count: int) -> dict[int, dict[str, str]]:
    """``I:KEY=VALUE`` options as {index: {KEY: VALUE}}; a one-line error when malformed.

    >>> parse_env(["3:H25_BROKEN=1"], 10)
    {3: {'H25_BROKEN': '1'}}
    """
    found: dict[int, dict[str, str]] = {}
    for value in values:
        index, sep, pair = value.partition(":")
        key, eq, text = pair.partition("=")
        if not sep or not eq or not index.isdigit() or not key:
            raise KuiperdError(f"--env {value!r} is not I:KEY=VALUE; write e.g. 3:H25_BROKEN=1")
        if int(index) >= count:
            raise KuiperdError(f"--env {value!r}: there are only {count} servers (0 to "
                               f"{count - 1})")
        found.setdefault(int(index), {})[key] = text
    return found


class Fleet:
    """The servers, started and stopped together."""

    def __init__(self, binary: Path, python: str, count: int, base: Path, ports: Ports,
                 env: dict[int, dict[str, str]], keep: bool) -> None:
        self.binary = check_binary(binary)
        self.etc = find_etc(self.binary)
        self.python = python
        self.count = count
        self.base = base
        self.ports = ports
        self.env = env
        self.keep = keep
        self.procs: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []

    def start(self) -> None:
        if shutil.which("unshare") is None:
            raise KuiperdError("no unshare on PATH; install util-linux")
        self.base.mkdir(parents=True, exist_ok=True)
        for i in range(self.count):
            run = self.base / f"server-{i}"
            run.mkdir()
            prepare_folder(run, self.binary, self.etc)
            ports = ports_of(i, self.ports.rest, self.ports.cli, self.ports.http)
            env = server_env(os.environ, run, ports, self.python)
            env.update(self.env.get(i, {}))
            with open(run / LOG_NAME, "ab") as log:
                self.procs.append(subprocess.Popen(
                    namespace_command(run / "bin" / "kuiperd"), cwd=run, env=env,
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True))
            self.urls.append(f"http://127.0.0.1:{ports.rest}")
        for i, url in enumerate(self.urls):
            self._wait(i, url)

    def _wait(self, index: int, url: str, timeout: float = 60.0) -> None:
        give_up = time.monotonic() + timeout
        log = self.base / f"server-{index}" / LOG_NAME
        while True:
            if self.procs[index].poll() is not None:
                raise KuiperdError(f"server {index} exited before {url} answered: "
                                   f"{log_tail(log)}")
            try:
                with urllib.request.urlopen(url + "/", timeout=1):
                    return
            except urllib.error.HTTPError:
                return
            except OSError:
                pass
            if time.monotonic() > give_up:
                raise KuiperdError(f"server {index} did not answer at {url} within "
                                   f"{timeout:g} s: {log_tail(log)}")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM every server (they stop their rules and plugins), then end the groups;
        the tmpfs of each goes away with its namespace."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.procs = []
        if not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)


def _stop_on_term(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the servers as Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kuiperd_fleet",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--kuiperd", required=True, type=Path, help="a kuiperd binary")
    parser.add_argument("-n", "--count", type=int, default=10, help="servers (default: 10)")
    parser.add_argument("--python", default=sys.executable,
                        help="the Python the servers start plugins with")
    parser.add_argument("--rest-port", type=int, default=9250, help="first REST port")
    parser.add_argument("--cli-port", type=int, default=20650, help="first CLI port")
    parser.add_argument("--http-port", type=int, default=10250,
                        help="first httppush port")
    parser.add_argument("--fleet", type=Path, default=Path("fleet.txt"),
                        help="the fleet file to write (default: fleet.txt)")
    parser.add_argument("--base", type=Path, help="where the run folders go (default: a "
                        "new folder under /var/tmp, since /tmp is private to each server)")
    parser.add_argument("--env", action="append", default=[], metavar="I:KEY=VALUE",
                        help="one more environment variable for server I (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the run folders and logs")
    args = parser.parse_args(argv)
    base = args.base or Path(tempfile.mkdtemp(prefix="ekuiper-fleet-", dir="/var/tmp"))
    try:
        fleet = Fleet(args.kuiperd, args.python, args.count, base,
                      Ports(args.rest_port, args.cli_port, args.http_port),
                      parse_env(args.env, args.count), args.keep)
    except KuiperdError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _stop_on_term)
    try:
        fleet.start()
        args.fleet.write_text("".join(f"{u}\n" for u in fleet.urls))
        print(f"{args.count} servers up, listed in {args.fleet}; logs under {base}; "
              "Ctrl-C stops them", flush=True)
        while True:
            time.sleep(3600)
    except KuiperdError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        fleet.stop()


if __name__ == "__main__":
    sys.exit(main())
