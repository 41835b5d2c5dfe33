"""The recorder plugin ``ekuiper-plugin record`` installs for a recording, and the end of it
that listens on this machine.

The plugin (``sdkrecord<port>``) has one sink and two functions. The sink forwards every
frame a rule gives it, unchanged, with the tag its action carries; added beside a plugin's
sink action, with the same properties, it gets the frames the plugin's sink gets. The
functions wrap a call of the plugin's function in the rule's SQL,
``R('addr', 'site', A('addr', 'site', a, b), f(a, b))``: eKuiper evaluates a function's
arguments in order, so ``A`` sends the arguments ``f`` is about to get (as eKuiper encodes
them for a portable function, which is what ``f`` receives) and returns a token, then
``R`` sends ``f``'s
result under that token and returns it, unchanged, to the rule. A call that fails on the
server leaves its arguments without a result. For an aggregate ``f``, ``A`` is the
aggregate ``<name>_groupargs``, so that it gets the group's lists as ``f`` does; over an
empty group eKuiper gives each argument of ``A`` and ``f`` null (seen on v2.4), the
address and site among them, so an aggregate's call is opened first by the scalar
``E('addr', 'site')``, as ``R('addr', 'site', E(...), A(...), f(...))``, and a call that
``A`` did not describe was one over an empty group.

Messages go over plain TCP, each a 4-byte length, a JSON header line and the raw payload,
so that neither end needs more than the standard library and ``ekuiper_sdk``.
"""

from __future__ import annotations

import json
import queue
import socket
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The prefix of the recorder plugin's name; the server's REST port follows, as for the
#: capture plugin of the real-eKuiper tests, since plugin sockets are named after plugins.
RECORDER_PREFIX = "sdkrecord"
#: The keys the recorder's sink action carries besides the copied properties.
ADDRESS_KEY = "sdkRecordTo"
TAG_KEY = "sdkRecordTag"

_SCRIPT = '''"""Forwards what eKuiper gives it to the recording that installed it (ekuiper-plugin
record). Removed when the recording ends."""

import itertools
import json
import socket
import struct
import threading

from ekuiper_sdk import Function, PluginConfig, Sink, plugin

_links = {}
_lock = threading.Lock()
_seq = itertools.count(1)


def send(address, header, payload=b""):
    """One message to the recording at ``address`` (host:port), on one shared link."""
    body = json.dumps(header).encode("utf-8") + b"\\n" + payload
    data = struct.pack(">I", len(body)) + body
    with _lock:
        for attempt in (1, 2):
            link = _links.get(address)
            try:
                if link is None:
                    host, port = address.rsplit(":", 1)
                    link = _links[address] = socket.create_connection((host, int(port)), 10)
                link.sendall(data)
                return
            except OSError:
                _links.pop(address, None)
                if attempt == 2:
                    raise


class Forward(Sink):
    def configure(self, conf):
        self.address = str(conf["@ADDRESS@"])
        self.tag = str(conf["@TAG@"])

    def collect(self, ctx, data):
        payload = data if isinstance(data, bytes) else json.dumps(data).encode("utf-8")
        send(self.address, {"kind": "frame", "tag": self.tag}, payload)


class Arguments(Function):
    def validate(self, args):
        return "" if len(args) >= 2 else "@NAME@_args needs an address and a site"

    def exec(self, args, ctx):
        address, site, values = str(args[0]), str(args[1]), list(args[2:])
        token = f"{address}|{site}|{next(_seq)}"
        send(address, {"kind": "args", "site": site, "token": token, "args": values,
                       "rule": ctx.get_rule_id()})
        return token

    def is_aggregate(self):
        return False


class GroupArguments(Arguments):
    """For an aggregate function: each argument is the list of the group's values, the
    address and site (literals) repeated once per row."""

    def exec(self, args, ctx):
        address, site = (a[0] if isinstance(a, list) and a else a for a in args[:2])
        if not isinstance(address, str):
            # An empty group: eKuiper gives each argument null (seen on v2.4), the address
            # and site among them; the enter and result functions record the call.
            return ""
        return super().exec([address, site, *args[2:]], ctx)

    def is_aggregate(self):
        return True


class Enter(Function):
    """Says that an aggregate's call begins (even over an empty group)."""

    def validate(self, args):
        return "" if len(args) == 2 else "@NAME@_enter needs an address and a site"

    def exec(self, args, ctx):
        send(str(args[0]), {"kind": "enter", "site": str(args[1]), "rule": ctx.get_rule_id()})
        return ""

    def is_aggregate(self):
        return False


class Result(Function):
    def validate(self, args):
        return "" if len(args) in (4, 5) else "@NAME@_result needs an address, a site, a " \
            "token and a value"

    def exec(self, args, ctx):
        address, site, token, value = str(args[0]), str(args[1]), str(args[-2] or ""), args[-1]
        send(address, {"kind": "result", "site": site, "token": token, "result": value,
                       "empty": token == ""})
        return value

    def is_aggregate(self):
        return False


if __name__ == "__main__":
    plugin.start(PluginConfig("@NAME@", {}, {"@NAME@": Forward},
                              {"@NAME@_args": Arguments, "@NAME@_groupargs": GroupArguments,
                               "@NAME@_enter": Enter, "@NAME@_result": Result}))
'''


def recorder_name(port: int) -> str:
    """The recorder plugin's name on a server whose REST API is on ``port``.

    >>> recorder_name(9081)
    'sdkrecord9081'
    """
    return f"{RECORDER_PREFIX}{port}"


def write_recorder_plugin(folder: Path, name: str) -> Path:
    """Write the recorder plugin's folder (script and manifest) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    script = (_SCRIPT.replace("@NAME@", name).replace("@ADDRESS@", ADDRESS_KEY)
              .replace("@TAG@", TAG_KEY))
    (folder / f"{name}.py").write_text(script, encoding="utf-8")
    (folder / f"{name}.json").write_text(json.dumps({
        "version": "v1.0.0", "language": "python", "executable": f"{name}.py",
        "sinks": [name],
        "functions": [f"{name}_args", f"{name}_groupargs", f"{name}_enter",
                      f"{name}_result"]}),
        encoding="utf-8")
    return folder


@dataclass
class Message:
    """One message of the recorder plugin: its header and the raw payload (a frame)."""

    header: dict[str, Any]
    payload: bytes


class Listener:
    """The TCP socket the recorder plugin sends to: one reader thread per connection, the
    messages in one queue, in the order each connection sent them."""

    def __init__(self, listen: str = "127.0.0.1", advertise: str | None = None) -> None:
        self._server = socket.create_server((listen, 0))
        self.address = f"{advertise or listen}:{self._server.getsockname()[1]}"
        self.messages: queue.Queue[Message] = queue.Queue()
        self._closed = threading.Event()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True, name="record-accept").start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True,
                             name="record-read").start()

    def _read(self, conn: socket.socket) -> None:
        with conn:
            while True:
                head = _read_exactly(conn, 4)
                if head is None:
                    return
                body = _read_exactly(conn, struct.unpack(">I", head)[0])
                if body is None:
                    return
                line, _, payload = body.partition(b"\n")
                self.messages.put(Message(json.loads(line), payload))

    def close(self) -> None:
        self._closed.set()
        self._server.close()
        for conn in self._conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _read_exactly(conn: socket.socket, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        try:
            chunk = conn.recv(left)
        except OSError:
            return None
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
