"""A stand-in for the ``kuiperd`` binary, to test how the benchmark runs a private server.

``make_fake_kuiperd(folder, mode)`` writes ``folder/bin/kuiperd`` (an executable script
running this file) and ``folder/etc/`` with a ``kuiper.yaml``, laid out as a built eKuiper.
Run as a script, it does what ``mode`` says:

- ``serve``: answers ``GET /`` on ``KUIPER__BASIC__RESTPORT``, writes the environment and
  folder it was started with to ``env.json`` in its base folder (``KuiperBaseKey``), and
  starts a "plugin" child that ignores SIGTERM, as a plugin whose host
  failed to stop it would be; on SIGTERM the server exits and leaves the child behind.
- ``stubborn``: as ``serve``, but ignores SIGTERM.
- ``exit``: writes two log lines and exits with code 3.
- ``silent``: never answers.
- ``pprof-busy``: exits as eKuiper before 2.2 does when its fixed pprof port is taken.
- ``busy-once``: the first start writes eKuiper's "address already in use" and exits, as when
  another process took the port first; the second serves.

With ``FAKE_KUIPERD_PIDS`` set, each start appends ``server <pid>`` and ``plugin <pid>``
lines to that file, so a test can see that no process outlived the run.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve()


def make_fake_kuiperd(folder: Path, mode: str) -> Path:
    """``folder/bin/kuiperd`` acting as ``mode``, with ``folder/etc/``; returns the binary."""
    (folder / "bin").mkdir(parents=True)
    (folder / "etc" / "sources").mkdir(parents=True)
    (folder / "etc" / "kuiper.yaml").write_text("basic:\n  restPort: 9081\n")
    (folder / "etc" / "sources" / "memory.yaml").write_text("default: {}\n")
    binary = folder / "bin" / "kuiperd"
    binary.write_text(f"#!{sys.executable}\nimport runpy, sys\nsys.argv[1:] = [{mode!r}]\n"
                      f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n")
    binary.chmod(0o755)
    return binary


class Root(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"version": "fake"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(base: Path, stubborn: bool) -> None:
    (base / "env.json").write_text(json.dumps({"env": dict(os.environ),
                                               "cwd": os.getcwd()}))
    child = subprocess.Popen([sys.executable, "-c",
                              "import signal, time; signal.signal(signal.SIGTERM, "
                              "signal.SIG_IGN); time.sleep(600)"])
    record("plugin", child.pid)
    signal.signal(signal.SIGTERM, signal.SIG_IGN if stubborn else
                  lambda *_: os._exit(0))  # leaves the child running
    server = http.server.HTTPServer(("127.0.0.1", int(os.environ["KUIPER__BASIC__RESTPORT"])),
                                    Root)
    print("Serving kuiper (version - fake)", flush=True)
    server.serve_forever()


def record(what: str, pid: int) -> None:
    if os.environ.get("FAKE_KUIPERD_PIDS"):
        with open(os.environ["FAKE_KUIPERD_PIDS"], "a") as f:
            f.write(f"{what} {pid}\n")


def started(pids_file: Path) -> dict[str, list[int]]:
    """The pids a fake recorded in ``pids_file``, by kind (``server``, ``plugin``)."""
    found: dict[str, list[int]] = {"server": [], "plugin": []}
    for line in pids_file.read_text().splitlines() if pids_file.exists() else []:
        what, pid = line.split()
        found[what].append(int(pid))
    return found


def main(mode: str) -> None:
    base = Path(os.environ["KuiperBaseKey"])
    record("server", os.getpid())
    if mode == "exit":
        print("level=info msg=starting\nlevel=fatal msg=cannot open the store", flush=True)
        sys.exit(3)
    if mode == "silent":
        time.sleep(600)
    if mode == "pprof-busy":
        print("2026/12/04 19:19:11 listen tcp :6060: bind: address already in use", flush=True)
        sys.exit(1)
    if mode == "busy-once" and not (base / "tried").exists():
        (base / "tried").write_text("")
        print("listen tcp 127.0.0.1:1: bind: address already in use", flush=True)
        sys.exit(1)
    serve(base, stubborn=mode == "stubborn")


if __name__ == "__main__":
    main(sys.argv[1])
