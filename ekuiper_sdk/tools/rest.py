"""eKuiper's REST API for portable plugins, and the ways to hand it a zip.

eKuiper installs a plugin from a URL it downloads itself (``POST /plugins/portables``
with ``{"name", "file"}``). Three ways to give it one:

* ``file``: a ``file://`` URL of the zip, when eKuiper shares this file system and may read
  outside its ``data/uploads`` folder (``basic.allowExternalFileAccess``; true in the
  ``kuiper.yaml`` eKuiper ships);
* ``upload``: the zip is first sent to eKuiper's upload endpoint (``POST /config/uploads``),
  which stores it in ``data/uploads`` and answers its path; eKuiper always reads ``file://``
  URLs there, so this works with no shared file system and no route back to this machine;
* ``serve``: a one-file HTTP server on this machine for the duration of the call. Since
  v2.4 eKuiper refuses loopback and private addresses unless ``basic.enablePrivateNet`` is
  true, so this suits public addresses or servers configured for it.

``auto`` (the default) uses ``file`` for a server on this machine and falls back to
``upload`` when eKuiper cannot read the file; for any other server it uses ``upload``.

Example::

    from ekuiper_sdk.tools.rest import RestClient, install_zip
    client = RestClient("http://127.0.0.1:9081")
    install_zip(client, "pysam.zip")
    print(client.plugin_status("pysam"))     # on any eKuiper, 1.x included
"""

from __future__ import annotations

import hashlib
import html
import http.client
import http.server
import ipaddress
import json
import re
import secrets
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import PackagingError, RestError
from ..hosts import HostGeneration, generation_of
from . import credentials
from .manifest import read_zip_manifest

DEFAULT_SERVER = "http://127.0.0.1:9081"
VIAS = ("auto", "file", "upload", "serve")
#: Seconds a plugin's status is watched after an install or update before it is reported.
SETTLE_S = 5.0


@dataclass
class Response:
    """An HTTP answer from eKuiper."""

    status: int
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", "replace").strip()

    def json(self) -> Any:
        return json.loads(self.body)


def normalize_server(server: str) -> str:
    """``host:port`` or a URL, as a base URL with a scheme and no trailing slash.

    >>> normalize_server("10.0.0.5:9081/")
    'http://10.0.0.5:9081'
    """
    server = server.strip()
    credentials.refuse_userinfo(server)  # before any message could repeat a password
    if "://" not in server:
        server = "http://" + server
    try:
        parts = urllib.parse.urlsplit(server)
        parts.port  # noqa: B018 - a port that is not a number raises here, not at the call
    except ValueError:
        parts = urllib.parse.urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RestError(f"{{server}} {server!r} is not an http(s) URL",
                        hint="pass e.g. http://127.0.0.1:9081")
    return server.rstrip("/")


def error_text(body: bytes) -> str:
    """The message of an eKuiper error answer (``{"error": code, "message": text}``), or the body.

    >>> error_text(b'{"error":1000,"message":"portable plugin x is not found"}\\n')
    'portable plugin x is not found'
    """
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return text


#: eKuiper 1.x's error when a rule with a portable sink starts again: it never closed
#: the sink's ack socket (fixed in 2.0 by #3156), and nothing on the plugin side frees it.
ACK_SOCKET_IN_USE = re.compile(r"_ack\.ipc\S*:? .*address (already )?in use", re.IGNORECASE)
ACK_SOCKET_HINT = ("eKuiper 1.x never closes a portable sink's ack socket when its rule "
                   "stops (eKuiper #3156, fixed in 2.0): restart eKuiper to start the rule "
                   "again, or give the restarted rule a new id")


def hint_for(message: str, via: str = "") -> str:
    """Advice for the eKuiper errors a plugin install commonly meets.

    >>> hint_for("portable plugin create command error: invalid name x: duplicate")
    'it is already installed: use `ekuiper-plugin update`'
    >>> hint_for("fail to install plugin: plugin p.py control handshake error: receive "
    ...          "time out")[:35]
    'the plugin process never answered: '
    """
    if "duplicate" in message or "already exists" in message:
        return "it is already installed: use `ekuiper-plugin update`"
    if "in internal network" in message:
        return ("eKuiper refuses private addresses unless basic.enablePrivateNet is true; "
                "use {via=upload}")
    if "file access denied" in message:
        return ("eKuiper reads file:// URLs only under data/uploads unless "
                "basic.allowExternalFileAccess is true; use {via=upload}")
    if "missing or invalid json file" in message:
        return "the zip needs <name>.json at its root: build it with `ekuiper-plugin pack`"
    if "fail to download file" in message and via == "serve":
        return "eKuiper could not reach this machine: pass {serve_address} or use {via=upload}"
    if "control handshake error" in message:
        # Seen on eKuiper v2.4: a plugin that dies on import (no ekuiper_sdk in the server's
        # Python) is waited for until portable.initTimeout, and the error names no cause.
        return ("the plugin process never answered: it most likely failed at start, and its "
                "traceback is in eKuiper's log (a module the server's Python lacks: "
                "`ekuiper-plugin validate` imports the plugin as the server will, and packing "
                "with {vendor=True} ships ekuiper-sdk and requirements.txt)")
    if ACK_SOCKET_IN_USE.search(message):
        return ACK_SOCKET_HINT
    if "not found" in message:
        return "see `ekuiper-plugin list`"
    return ""


@dataclass(frozen=True)
class ServerInfo:
    """What ``GET /`` says of a server: its version, and so its generation."""

    version: str
    generation: HostGeneration


#: The state ``plugin_status`` gives on a server with no status route (eKuiper 1.x).
INSTALLED = "installed"


class RestClient:
    """A small client of eKuiper's plugin endpoints (stdlib only).

    ``timeout`` bounds each call; an install waits for the plugin's handshake, up to
    eKuiper's ``portable.initTimeout`` (60 s by default), so keep it above that.

    >>> RestClient("127.0.0.1:9081").server
    'http://127.0.0.1:9081'
    """

    def __init__(self, server: str = DEFAULT_SERVER, *, token: str | None = None,
                 timeout: float = 120.0) -> None:
        self.server = normalize_server(server)
        self.token = credentials.clean_token(token)
        self.timeout = timeout
        self._server_info: ServerInfo | None = None

    def request(self, method: str, path: str, body: bytes | dict[str, Any] | None = None,
                headers: dict[str, str] | None = None) -> Response:
        """Send one request; ``RestError`` for an HTTP error or an unreachable server."""
        data: bytes | None
        hdrs = dict(headers or {})
        if isinstance(body, dict):
            data = json.dumps(body).encode("utf-8")
            hdrs.setdefault("Content-Type", "application/json")
        else:
            data = body
        if self.token:
            hdrs["Authorization"] = self.token
        req = urllib.request.Request(self.server + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return Response(resp.status, resp.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            message = error_text(raw) or f"HTTP {exc.code} {exc.reason}"
            if exc.code == 401:
                hint = "pass {token} (eKuiper runs with authentication)"
            elif exc.code in (404, 405) and not raw.strip().startswith(b"{"):
                hint = f"{self.server} does not look like eKuiper's REST API (wrong {{server}}?)"
            else:
                hint = hint_for(message)
            raise RestError(message, exc.code, hint) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            why = getattr(reason, "strerror", None) or str(reason)
            raise RestError(f"cannot reach eKuiper at {self.server} ({why})",
                            hint="start it or pass {server}") from None
        except (socket.timeout, TimeoutError):
            raise RestError(f"eKuiper at {self.server} did not answer {method} {path} within "
                            f"{self.timeout:g} s", hint="pass a larger {timeout}") from None
        except (ConnectionError, http.client.HTTPException) as exc:
            raise RestError(f"eKuiper at {self.server} broke off {method} {path} ({exc})",
                            hint="check the server log") from None

    @staticmethod
    def _path(name: str, suffix: str = "") -> str:
        return "/plugins/portables/" + urllib.parse.quote(name, safe="") + suffix

    def list_plugins(self) -> list[dict[str, Any]]:
        """``GET /plugins/portables``: every installed portable plugin's manifest."""
        data = self.request("GET", "/plugins/portables").json()
        return list(data or [])

    def describe(self, name: str) -> dict[str, Any]:
        """``GET /plugins/portables/<name>``: a plugin's manifest, with its absolute executable."""
        return dict(self.request("GET", self._path(name)).json())

    def status(self, name: str) -> dict[str, Any]:
        """``GET /plugins/portables/<name>/status``: ``{"refCount", "status", "errMsg"}``."""
        return dict(self.request("GET", self._path(name, "/status")).json())

    def server_info(self) -> ServerInfo:
        """``GET /``: the server's version and generation, asked once per client."""
        cached = self._server_info
        if cached is None:
            data = self.request("GET", "/").json()
            version = str(data.get("version", "")) if isinstance(data, dict) else ""
            cached = ServerInfo(version or "unknown", generation_of(version))
            self._server_info = cached
        return cached

    def plugin_status(self, name: str) -> dict[str, Any]:
        """A plugin's status on any eKuiper, with a ``server`` entry saying what it is.

        2.x answers ``/status``. 1.x has no such route and runs a plugin only while a rule
        uses it, so there the plugin's manifest is read (an error when it is not
        installed) and the state is ``installed``, with a ``note`` saying so.
        """
        info = self.server_info()
        server = {"version": info.version, "generation": info.generation.name}
        if info.generation.status_route:
            return dict(self.status(name), server=server)
        self.describe(name)
        return {"status": INSTALLED, "refCount": {}, "errMsg": "", "server": server,
                "note": f"eKuiper {info.version} has no plugin status; it starts the plugin "
                        "when a rule first uses it and stops it a second after the last one "
                        "stops"}

    def install(self, name: str, url: str, shell_paras: Sequence[str] = ()) -> str:
        """``POST /plugins/portables``; eKuiper downloads ``url``, unpacks, runs install.sh and
        starts the plugin before it answers. Returns eKuiper's message."""
        body: dict[str, Any] = {"name": name, "file": url}
        if shell_paras:
            body["shellParas"] = list(shell_paras)
        return self.request("POST", "/plugins/portables", body).text()

    def update(self, name: str, url: str, shell_paras: Sequence[str] = ()) -> str:
        """``PUT /plugins/portables/<name>``: eKuiper deletes the plugin, then installs ``url``.
        When the new zip fails, the plugin stays deleted."""
        body: dict[str, Any] = {"name": name, "file": url}
        if shell_paras:
            body["shellParas"] = list(shell_paras)
        return self.request("PUT", self._path(name), body).text()

    def delete(self, name: str) -> str:
        """``DELETE /plugins/portables/<name>``; returns eKuiper's message."""
        return self.request("DELETE", self._path(name)).text()

    def upload(self, filename: str, data: bytes) -> str:
        """``POST /config/uploads`` (multipart field ``uploadFile``); returns the path eKuiper
        stored the file at, on its own file system."""
        boundary = "ekuiper-plugin-" + secrets.token_hex(12)
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"uploadFile\"; "
                f"filename=\"{filename}\"\r\nContent-Type: application/zip\r\n\r\n")
        body = head.encode("utf-8") + data + f"\r\n--{boundary}--\r\n".encode()
        resp = self.request("POST", "/config/uploads", body,
                            {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        return html.unescape(resp.text())

    def delete_upload(self, filename: str) -> None:
        """``DELETE /config/uploads/<filename>``."""
        self.request("DELETE", "/config/uploads/" + urllib.parse.quote(filename, safe=""))


def is_local_server(server: str) -> bool:
    """True when the server's host is an address of this machine (so it may share its files).

    >>> is_local_server("http://127.0.0.1:9081")
    True
    """
    host = urllib.parse.urlsplit(normalize_server(server)).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    for family, _, _, _, addr in infos:
        ip = str(addr[0])
        if ipaddress.ip_address(ip.split("%")[0]).is_loopback:
            return True
        try:
            # Binding succeeds only for an address one of this machine's interfaces holds.
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.bind((ip, 0))
            return True
        except OSError:
            continue
    return False


def _route_address(server: str) -> str:
    """The local address this machine uses to reach ``server`` (no packet is sent)."""
    parts = urllib.parse.urlsplit(normalize_server(server))
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((parts.hostname or "127.0.0.1", parts.port or 80))
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"


class ZipServer:
    """Serve one zip over HTTP at an unguessable path while a ``with`` block runs.

    ``bind`` is ``HOST:PORT`` to listen on (default all interfaces, a free port);
    ``advertise`` the host name eKuiper should use, by default the address this machine
    uses to reach ``server``.

    >>> with ZipServer(Path("pysam.zip"), server="http://10.0.0.5:9081") as zs:  # doctest: +SKIP
    ...     client.install("pysam", zs.url)
    """

    def __init__(self, path: Path, *, bind: str = "", advertise: str | None = None,
                 server: str = DEFAULT_SERVER, log: IO[str] | None = None) -> None:
        self.path = Path(path)
        self.data = self.path.read_bytes()
        host, _, port = bind.rpartition(":") if ":" in bind else (bind, "", "0")
        self.bind_host = host.strip("[]") or "0.0.0.0"
        try:
            self.bind_port = int(port or 0)
        except ValueError:
            raise RestError(f"{{serve_address}} {bind!r} is not HOST:PORT",
                            hint="pass e.g. 0.0.0.0:8000") from None
        self.advertise = advertise or (self.bind_host if self.bind_host not in ("0.0.0.0", "::")
                                       else _route_address(server))
        self.route = f"/{secrets.token_urlsafe(16)}/{self.path.name}"
        self.downloads = 0
        self.log = log
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "use ZipServer in a with block"
        host = f"[{self.advertise}]" if ":" in self.advertise else self.advertise
        return f"http://{host}:{self._httpd.server_address[1]}{self.route}"

    def __enter__(self) -> ZipServer:  # noqa: PYI034 - Self needs Python 3.11
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != outer.route:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(outer.data)))
                self.end_headers()
                self.wfile.write(outer.data)
                outer.downloads += 1
                if outer.log is not None:
                    outer.log.write(f"eKuiper ({self.client_address[0]}) downloaded "
                                    f"{outer.path.name}, {len(outer.data)} bytes\n")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        try:
            self._httpd = http.server.ThreadingHTTPServer((self.bind_host, self.bind_port),
                                                          Handler)
        except OSError as exc:
            raise RestError(f"cannot listen on {self.bind_host}:{self.bind_port} "
                            f"({exc.strerror})", hint="pass another {serve_address}") from None
        self._httpd.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        name="zip-server", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


@dataclass
class InstallResult:
    """What ``install_zip`` did."""

    name: str
    via: str
    url: str
    message: str
    status: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": True, "name": self.name, "via": self.via, "url": self.url,
                "message": self.message, "status": self.status, "notes": self.notes}


def install_zip(client: RestClient, zip_path: str | Path, *, update: bool = False,
                via: str = "auto", name: str | None = None, serve_address: str = "",
                advertise: str | None = None, shell_paras: Sequence[str] = (),
                log: IO[str] | None = None, settle: float = 0.0) -> InstallResult:
    """Install (or update) a plugin zip on the server, handing it over as ``via`` says.

    The status is read once it settles: eKuiper answers as soon as the plugin shook hands,
    and a plugin that dies a moment later (at its first symbol, in a thread it started)
    shows ``running`` first and ``error`` seconds later. So the status is watched for
    ``settle`` seconds (the command line's default: :data:`SETTLE_S`), and the first
    ``error`` or ``stop`` ends the watch.

    The zip's root manifest is checked first, so a wrong zip fails here with a fix rather
    than on the server. Raises ``RestError`` (eKuiper's text) or ``PackagingError``.

    >>> install_zip(RestClient(), "pysam.zip").message          # doctest: +SKIP
    'portable plugin pysam is created'
    """
    log = log if log is not None else sys.stderr
    path = Path(zip_path)
    if via not in VIAS:
        raise RestError(f"{{via}} {via!r} is unknown", hint=f"use one of {', '.join(VIAS)}")
    if not path.is_file():
        raise PackagingError([f"{path}: no such file; pass the zip `ekuiper-plugin pack` wrote"])
    manifest = read_zip_manifest(path, name)
    plugin = manifest.name
    call = client.update if update else client.install
    notes: list[str] = []

    def send(url: str, how: str) -> tuple[str, str]:
        try:
            return call(plugin, url, shell_paras), url
        except RestError as exc:
            exc.hint = exc.hint_template or hint_for(exc.message, how)
            raise

    def by_upload() -> tuple[str, str]:
        data = path.read_bytes()
        # A content-addressed name: two installs never collide, and the .zip suffix is
        # what eKuiper requires of the URL.
        upload_name = f"{plugin}-{hashlib.sha256(data).hexdigest()[:12]}.zip"
        stored = client.upload(upload_name, data)
        try:
            return send("file://" + urllib.parse.quote(stored), "upload")
        finally:
            try:
                client.delete_upload(upload_name)
            except RestError as exc:
                notes.append(f"could not remove {stored} from the server: {exc}")

    chosen = via
    if via == "auto":
        chosen = "file" if is_local_server(client.server) else "upload"
    if chosen == "file":
        try:
            message, url = send(path.resolve().as_uri(), "file")
        except RestError as exc:
            if via != "auto" or "fail to download file" not in exc.message:
                raise
            reason = exc.message.rsplit(": ", 1)[-1]
            notes.append(f"eKuiper cannot read {path.resolve()} ({reason}); uploaded the zip "
                         "instead")
            log.write(notes[-1] + "\n")
            chosen = "upload"
            message, url = by_upload()
    elif chosen == "upload":
        message, url = by_upload()
    else:
        with ZipServer(path, bind=serve_address, advertise=advertise, server=client.server,
                       log=log) as zs:
            log.write(f"serving {path.name} at {zs.url} until eKuiper answers\n")
            message, url = send(zs.url, "serve")
    result = InstallResult(plugin, chosen, url, message, notes=notes)
    result.status = settled_status(client, plugin, settle)
    return result


def settled_status(client: RestClient, name: str, settle: float = SETTLE_S,
                   poll: float = 0.25) -> dict[str, Any] | None:
    """The plugin's status after ``settle`` seconds, or the first that says it is down.

    >>> settled_status(RestClient(), "pysam", 5.0)["status"]      # doctest: +SKIP
    'running'
    """
    give_up = time.monotonic() + settle
    status: dict[str, Any] | None = None
    while True:
        try:
            status = client.plugin_status(name)
        except RestError:
            status = None
        state = (status or {}).get("status")
        if state in ("error", "stop", INSTALLED) or time.monotonic() >= give_up:
            return status
        time.sleep(min(poll, max(0.0, give_up - time.monotonic())))
