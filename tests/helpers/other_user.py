"""Another local user, played by a child process that runs as ``nobody``.

Its code is standard library only (raw SP-over-IPC clients, no pynng), run by a Python
that user can execute; it prints one JSON line with what it achieved. Root is needed to
start a process as another user: callers skip with :data:`SKIP_REASON` otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from typing import Any

OTHER_UID = 65534  # nobody
OTHER_GID = 65534
PAIR = 0x10  # SP protocol numbers


def _python() -> str | None:
    # The test's own interpreter may live where that user cannot read (a home folder).
    for candidate in ("/usr/bin/python3", shutil.which("python3")):
        if candidate and os.access(candidate, os.X_OK) and not candidate.startswith("/root"):
            return candidate
    return None


PYTHON = _python()
SKIP_REASON = ("needs root (to start a process as another user) and a python3 outside "
               "/root that user can run")
CAN_RUN = os.geteuid() == 0 and PYTHON is not None

# SP over IPC: an 8-byte header (\0 S P \0, the protocol's number, two zero bytes), then
# each message as 0x01, its length as 8 bytes big-endian, the bytes.
_SP = '''
import json, os, socket, struct, sys, time
PUSH, PULL = 0x50, 0x51
def header(proto):
    return b"\\0SP\\0" + struct.pack(">H", proto) + b"\\0\\0"
def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data
def frame(body):
    return b"\\x01" + struct.pack(">Q", len(body)) + body
'''

# Connects to a listener in a tight loop for ``seconds`` (or ``limit`` connections), as
# protocol ``proto`` (PUSH by default); sends ``frame`` on every connection that completes
# its SP handshake. Counts what happened. ``@name`` is a Linux abstract socket.
PUSHER = _SP + '''
path, seconds, body = sys.argv[1], float(sys.argv[2]), sys.argv[3].encode()
proto = int(sys.argv[4]) if len(sys.argv) > 4 else PUSH
limit = int(sys.argv[5]) if len(sys.argv) > 5 else 0  # connections at most (0: no limit)
if path.startswith("@"):  # a Linux abstract socket
    path = "\\0" + path[1:]
counts = {"connected": 0, "refused": 0, "handshakes": 0, "sent": 0}
end = time.monotonic() + seconds
while time.monotonic() < end and not (limit and counts["connected"] >= limit):
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        counts["connected"] += 1
        conn.sendall(header(proto))
        read_exact(conn, 8)
        counts["handshakes"] += 1
        for _ in range(20):
            conn.sendall(frame(body))
            counts["sent"] += 1
    except OSError:
        counts["refused"] += 1
    finally:
        conn.close()
print(json.dumps(counts), flush=True)
'''

# Binds ``path`` (as a stranger who took it while its owner was away) and reads what any
# dialer sends for ``seconds``.
PULLER = _SP + '''
path, seconds = sys.argv[1], float(sys.argv[2])
counts = {"accepted": 0, "records": 0}
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
end = time.monotonic() + seconds
while True:
    try:
        srv.bind(path)
        break
    except OSError:
        if time.monotonic() >= end:
            print(json.dumps({"bound": False}), flush=True)
            sys.exit(0)
        time.sleep(0.001)
os.chmod(path, 0o777)
srv.listen(16)
print(json.dumps({"bound": True}), flush=True)
srv.settimeout(0.05)
conns = []
greeted = set()
while time.monotonic() < end:
    try:
        conn, _ = srv.accept()
        counts["accepted"] += 1
        conn.settimeout(0.2)
        conn.sendall(header(PULL))
        conns.append(conn)
    except OSError:
        pass
    for conn in list(conns):
        try:
            if conn not in greeted:
                read_exact(conn, 8)
                greeted.add(conn)
            while time.monotonic() < end:
                kind = read_exact(conn, 9)
                read_exact(conn, struct.unpack(">Q", kind[1:])[0])
                counts["records"] += 1
        except OSError:
            conns.remove(conn)
            conn.close()
srv.close()
os.unlink(path)
print(json.dumps(counts), flush=True)
'''


def start(code: str, *args: str) -> subprocess.Popen[str]:
    """Run ``code`` as the other user; read its JSON lines with :func:`result`."""
    assert PYTHON is not None, SKIP_REASON
    return subprocess.Popen([PYTHON, "-c", textwrap.dedent(code), *args], user=OTHER_UID,
                            group=OTHER_GID, extra_groups=[], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd="/")


def line(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """The child's next JSON line."""
    assert proc.stdout is not None
    text = proc.stdout.readline()
    if not text:
        raise AssertionError(f"the other user's process said nothing: {proc.communicate()[1]}")
    return json.loads(text)  # type: ignore[no-any-return]


def result(proc: subprocess.Popen[str], timeout: float = 30.0) -> dict[str, Any]:
    """The child's last JSON line, once it has exited."""
    out, err = proc.communicate(timeout=timeout)
    lines = out.strip().splitlines()
    assert proc.returncode == 0 and lines, f"the other user's process failed: {err}"
    return json.loads(lines[-1])  # type: ignore[no-any-return]
