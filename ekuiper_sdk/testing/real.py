"""Test a plugin on a real, running eKuiper: install it, create streams and rules, read
what the rules produce, and remove all of it afterwards.

The built-in :class:`~ekuiper_sdk.testing.PluginHost` behaves like eKuiper's portable
runtime; this module uses eKuiper itself, over its REST API, wherever it runs (here, in
Docker, on a device). A rule's output is read through a *capture* sink: a small portable
plugin of this SDK's own, installed beside the plugin under test, whose sink forwards
every frame eKuiper gives it to the test over a TCP socket that the test listens on. That
works where eKuiper's own ``file`` sink buffers and its ``rest`` sink refuses loopback and
private addresses.

Example::

    with RealEkuiper("http://127.0.0.1:9081") as server:
        server.install("example/pysam_async")
        server.create_stream("demo", "pyjson_async", datasource="topicX")
        out = server.capture()
        server.create_rule("r1", "SELECT count, revert2(name) AS r FROM demo", [out.action()])
        records = out.records(3)

The plugin zips are packed with ``--vendor`` for the server's Python (``python_version``,
default 3.12 as in the ``slim-python`` images), so the machine running the tests needs
a package index, the server does not. In pytest, the ``ekuiper_server`` fixture gives a
:class:`RealEkuiper` when ``--ekuiper-url`` or ``EKUIPER_URL`` is set and skips otherwise.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, TypeVar, Union

import pynng

from ..decorators.records import RecordDecoder
from ..errors import PackagingError, RealEkuiperError, RestError
from ..tools import rest
from ..tools.manifest import read_zip_manifest
from ..tools.pack import pack
from ..tools.rest import RestClient, install_zip
from ..tools.vendor import VendorOptions

__all__ = ["RealEkuiper", "Capture", "RealEkuiperError", "URL_ENV", "CAPTURE_PLUGIN",
           "CAPTURE_ENV"]

#: The environment variable naming the eKuiper server for real-eKuiper tests.
URL_ENV = "EKUIPER_URL"
#: The capture plugin's name and its sink's, followed by the server's port: a plugin's
#: control socket is named after it in the machine's /tmp, so two eKuiper servers on one
#: machine need two names.
CAPTURE_PLUGIN = "sdkcapture"
#: The environment variable that names the capture plugin instead.
CAPTURE_ENV = "EKUIPER_CAPTURE_PLUGIN"

_CAPTURE_SCRIPT = '''"""Forwards every frame a rule gives this sink to the address in its config."""

import pynng

from ekuiper_sdk import Plugin

app = Plugin("@NAME@")


@app.sink("@NAME@", records="bytes")
class Forward:
    def configure(self, conf):
        self.address = str(conf["address"])
        self.sock = None

    def collect(self, ctx, frame):
        if self.sock is None:
            self.sock = pynng.Push0(send_timeout=5000)
            self.sock.dial(self.address, block=True)
        self.sock.send(frame)

    def close(self, ctx):
        if self.sock is not None:
            self.sock.close()


if __name__ == "__main__":
    app.run()
'''


PathLike = Union[str, "os.PathLike[str]"]
T = TypeVar("T")


class Capture:
    """The test's end of a capture sink: frames arrive on a TCP socket it listens on.

    ``listen`` is the address this process listens on (``127.0.0.1`` when eKuiper runs on
    this machine); ``advertise`` the address eKuiper dials (for eKuiper in Docker, the
    host's address as the container sees it).
    """

    def __init__(self, listen: str = "127.0.0.1", advertise: str | None = None,
                 sink: str = CAPTURE_PLUGIN) -> None:
        self.sink = sink
        self._sock = pynng.Pull0(recv_timeout=100, recv_max_size=0)
        listener = self._sock.listen(f"tcp://{listen}:0")
        port = str(listener.local_address).rsplit(":", 1)[1]
        self.address = f"tcp://{advertise or listen}:{port}"
        self._frames: list[bytes] = []

    def action(self, **props: Any) -> dict[str, Any]:
        """The rule action that sends the rule's output here; ``props`` are the sink's
        properties (``sendSingle``, ``batchSize``, ``requireAck``...)."""
        return {self.sink: {"address": self.address, **props}}

    def frames(self, count: int, timeout: float = 10.0) -> list[bytes]:
        """The first ``count`` frames the rule sent, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while len(self._frames) < count:
            if time.monotonic() >= deadline:
                raise RealEkuiperError(f"the capture sink got {len(self._frames)} of {count} "
                                       f"frames within {timeout:g} s")
            try:
                self._frames.append(self._sock.recv())
            except pynng.Timeout:
                continue
        return self._frames[:count]

    def records(self, count: int, timeout: float = 10.0) -> list[Any]:
        """The first ``count`` records, decoded and flattened like a ``records="each"``
        sink gets them, whatever ``sendSingle`` and batching made of the frames."""
        decoder = RecordDecoder({}, "each")
        deadline = time.monotonic() + timeout
        while True:
            records = [r for frame in self._frames for r in decoder.decode(frame)]
            if len(records) >= count:
                return records[:count]
            self.frames(len(self._frames) + 1, max(0.0, deadline - time.monotonic()))

    def received(self) -> list[Any]:
        """Every record received so far, without waiting for more."""
        while True:
            try:
                self._frames.append(self._sock.recv(block=False))
            except pynng.TryAgain:
                break
        decoder = RecordDecoder({}, "each")
        return [r for frame in self._frames for r in decoder.decode(frame)]

    def close(self) -> None:
        self._sock.close()


class RealEkuiper:
    """A running eKuiper server, and everything a test created on it (removed by
    :meth:`close`, in reverse order, also after a failure).

    Args:
        url: eKuiper's REST API, e.g. ``http://127.0.0.1:9081``.
        python_version, platforms: the server's Python, for the vendored wheels.
        listen, advertise: the addresses of :class:`Capture` sockets.
        token: eKuiper's authentication token, when it runs with one.
        capture_plugin: the name of the capture sink plugin (and of its sink); default
            ``sdkcapture<port>``.
    """

    def __init__(self, url: str, *, python_version: str = "3.12",
                 platforms: Sequence[str] = ("x86_64",), listen: str = "127.0.0.1",
                 advertise: str | None = None, token: str | None = None,
                 capture_plugin: str | None = None) -> None:
        self.client = RestClient(url, token=token)
        self.python_version = python_version
        self.platforms = tuple(platforms)
        self.listen = listen
        self.advertise = advertise
        self._created: list[tuple[str, str]] = []   # (kind, name), in creation order
        self._captures: list[Capture] = []
        self._workdir = Path(tempfile.mkdtemp(prefix="ekuiper-real-"))
        port = urllib.parse.urlsplit(self.client.server).port or 80
        if capture_plugin is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*",
                                                            capture_plugin):
            raise ValueError(f"capture plugin name {capture_plugin!r}: use letters, digits "
                             "and '_', starting with a letter (it is a plugin and sink name)")
        self.capture_plugin = capture_plugin or f"{CAPTURE_PLUGIN}{port}"

    def __enter__(self) -> RealEkuiper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plugins ----------------------------------------------------------------

    def pack(self, plugin_dir: PathLike) -> Path:
        """Pack ``plugin_dir`` with vendored wheels for the server; the zip's path."""
        options = VendorOptions(python_version=self.python_version, platforms=self.platforms)
        out = self._workdir / f"{Path(plugin_dir).name}-{len(os.listdir(self._workdir))}.zip"
        try:
            pack(plugin_dir, out, vendor=options, log=io.StringIO())
        except PackagingError as exc:
            raise RealEkuiperError(f"cannot pack {plugin_dir}: {exc}") from None
        return out

    def install(self, plugin_dir: PathLike, *, update: bool = False) -> str:
        """Pack and install (or update) a plugin folder; returns the plugin's name.

        A plugin of that name already on the server is an error (it is not this test's to
        replace), unless ``update`` is set.
        """
        zip_path = self.pack(plugin_dir)
        name = read_zip_manifest(zip_path).name
        installed = {p.get("name") for p in self._step("list plugins", self.client.list_plugins)}
        if name in installed and not update:
            raise RealEkuiperError(f"plugin {name} is already installed on "
                                   f"{self.client.server}; delete it first or pass update=True")
        result = self._step(f"{'update' if update else 'install'} plugin {name}",
                            lambda: install_zip(self.client, zip_path, update=update,
                                                log=io.StringIO(), settle=1.0))
        if ("plugin", name) not in self._created and name not in installed:
            self._created.append(("plugin", name))
        status = (result.status or {}).get("status")
        # "installed": eKuiper 1.x has no status and starts the plugin with its first rule.
        if status not in (None, "running", rest.INSTALLED):
            raise RealEkuiperError(f"plugin {name} is {status}: "
                                   f"{(result.status or {}).get('errMsg', '')}")
        return name

    def plugin_status(self, name: str) -> dict[str, Any]:
        """``GET /plugins/portables/<name>/status``, or on eKuiper 1.x, which has no such
        route, ``installed`` (``RestClient.plugin_status``)."""
        return self._step(f"status of plugin {name}", lambda: self.client.plugin_status(name))

    # -- streams and rules --------------------------------------------------------

    def create_stream(self, name: str, source_type: str, *, datasource: str = "",
                      format: str = "json", conf_key: str | None = None,
                      shared: bool = False) -> None:
        """``CREATE STREAM name () WITH (TYPE=..., DATASOURCE=..., FORMAT=...)``."""
        props = [f'TYPE="{source_type}"', f'DATASOURCE="{datasource}"', f'FORMAT="{format}"']
        if conf_key:
            props.append(f'CONF_KEY="{conf_key}"')
        if shared:
            props.append('SHARED="true"')
        sql = f"CREATE STREAM {name} () WITH ({', '.join(props)})"
        self._step(f"create stream {name}",
                   lambda: self.client.request("POST", "/streams", {"sql": sql}))
        self._created.append(("stream", name))

    def create_rule(self, rule_id: str, sql: str, actions: Sequence[dict[str, Any]],
                    **options: Any) -> None:
        """Create and start a rule; eKuiper's refusal (a bad SQL, a function's Validate
        answer) raises :class:`RealEkuiperError` with eKuiper's message."""
        body: dict[str, Any] = {"id": rule_id, "sql": sql, "actions": list(actions)}
        if options:
            body["options"] = options
        self._step(f"create rule {rule_id}",
                   lambda: self.client.request("POST", "/rules", body))
        self._created.append(("rule", rule_id))

    def rule_status(self, rule_id: str) -> dict[str, Any]:
        """``GET /rules/<id>/status``: the rule's state and every operator's metrics."""
        status = self._step(f"status of rule {rule_id}", lambda: self.client.request(
            "GET", f"/rules/{rule_id}/status").json())
        return dict(status)

    def rule_errors(self, rule_id: str) -> list[str]:
        """The non-empty ``*_last_exception`` metrics of a rule."""
        status = self.rule_status(rule_id)
        return [str(v) for k, v in status.items() if k.endswith("_last_exception") and v]

    def delete(self, kind: str, name: str) -> None:
        """Delete a rule, stream or plugin now (and forget it)."""
        path = {"rule": "/rules/", "stream": "/streams/",
                "plugin": "/plugins/portables/"}[kind] + name
        self._step(f"delete {kind} {name}", lambda: self.client.request("DELETE", path))
        if (kind, name) in self._created:
            self._created.remove((kind, name))

    # -- output -------------------------------------------------------------------

    def capture(self) -> Capture:
        """A new :class:`Capture`; installs the capture plugin the first time."""
        installed = {p.get("name") for p in self._step("list plugins", self.client.list_plugins)}
        name = self.capture_plugin
        if name not in installed:
            folder = self._workdir / name
            folder.mkdir(exist_ok=True)
            (folder / f"{name}.py").write_text(_CAPTURE_SCRIPT.replace("@NAME@", name))
            (folder / f"{name}.json").write_text(json.dumps({
                "version": "v1.0.0", "language": "python",
                "executable": f"{name}.py", "sinks": [name]}))
            self.install(folder)
        capture = Capture(self.listen, self.advertise, sink=name)
        self._captures.append(capture)
        return capture

    # -- clean-up -----------------------------------------------------------------

    def close(self) -> None:
        """Remove every rule, stream and plugin this object created, newest first."""
        problems: list[str] = []
        order = {"rule": 0, "stream": 1, "plugin": 2}
        for kind, name in sorted(reversed(self._created), key=lambda item: order[item[0]]):
            try:
                self.delete(kind, name)
            except RealEkuiperError as exc:
                problems.append(str(exc))
        self._created.clear()
        for capture in self._captures:
            capture.close()
        self._captures.clear()
        shutil.rmtree(self._workdir, ignore_errors=True)
        if problems:
            raise RealEkuiperError("clean-up left things behind: " + "; ".join(problems))

    def _step(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except RestError as exc:
            raise RealEkuiperError(f"{what}: {exc.message}") from None
