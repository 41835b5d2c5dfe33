"""A stand-in for eKuiper's REST API for portable plugins, for the tests of ekuiper_sdk.rest.

It answers as eKuiper's handlers do: the same paths and methods, ``201`` and a text body for
a create, ``200`` and text for update and delete, JSON for list, describe and status, and
errors as ``{"error": code, "message": "<prefix>: <reason>"}`` with 400 (or 404 for what is
not found). It really downloads the zip from the URL it is given (``file://`` or
``http(s)://``, applying the ``allowExternalFileAccess`` and ``enablePrivateNet`` rules)
and installs it with the independent model of ``ekuiper_install_rules``.
"""

from __future__ import annotations

import email.parser
import email.policy
import html
import ipaddress
import json
import shutil
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ekuiper_sdk.hosts import generation_of

from . import ekuiper_install_rules as rules

UNDEFINED, NOT_FOUND = 1000, 1002


class Failure(Exception):
    def __init__(self, message: str, code: int = UNDEFINED) -> None:
        super().__init__(message)
        self.code = code


class FakeEkuiper:
    """Run with ``with FakeEkuiper(tmp_path) as ek: ... ek.url ...``."""

    def __init__(self, root: Path, *, allow_external_file_access: bool = True,
                 enable_private_net: bool = False, shares_file_system: bool = True,
                 install_env: dict[str, str] | None = None, version: str = "2.4.0") -> None:
        self.root = root
        #: What ``GET /`` answers; a 1.x version has no status route (ekuiper_sdk.hosts).
        self.version = version
        self.generation = generation_of(version)
        self.plugins_dir = root / "plugins" / "portable"
        self.uploads = root / "data" / "uploads"
        self.plugins_dir.mkdir(parents=True, exist_ok=True)
        self.uploads.mkdir(parents=True, exist_ok=True)
        self.allow_external_file_access = allow_external_file_access
        self.enable_private_net = enable_private_net
        self.shares_file_system = shares_file_system
        #: When set, a zip's install.sh is run as eKuiper runs it (``/bin/sh install.sh`` in
        #: the plugin folder) with this environment; else it is only unpacked.
        self.install_env = install_env
        self.registry: dict[str, dict[str, Any]] = {}
        self.statuses: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, bytes]] = []
        #: Streams and rules as eKuiper v2 describes them, for the tests to fill:
        #: {name: {"Name", "Options": {"type": ...}}}, {id: {"id", "sql", "actions"}}.
        self.streams: dict[str, dict[str, Any]] = {}
        self.rules: dict[str, dict[str, Any]] = {}
        self.downloads: list[str] = []
        self.lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # -- server -----------------------------------------------------------------------
    def __enter__(self) -> FakeEkuiper:  # noqa: PYI034 - Self needs Python 3.11
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with fake.lock:
                    fake.requests.append((self.command, self.path, body))
                status, ctype, payload = fake.dispatch(self.command, self.path,
                                                       self.headers.get("Content-Type", ""), body)
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- routing ----------------------------------------------------------------------
    def dispatch(self, method: str, raw_path: str, ctype: str,
                 body: bytes) -> tuple[int, str, bytes]:
        path = urllib.parse.unquote(urllib.parse.urlsplit(raw_path).path)
        parts = [p for p in path.split("/") if p]
        routes = {
            (): ("GET", "POST"),
            ("plugins", "portables"): ("GET", "POST"),
            ("plugins", "portables", "*"): ("GET", "DELETE", "PUT"),
            ("plugins", "portables", "*", "status"): ("GET",),
            ("config", "uploads"): ("GET", "POST"),
            ("config", "uploads", "*"): ("DELETE",),
            ("streams",): ("GET",), ("streams", "*"): ("GET",),
            ("rules",): ("GET",), ("rules", "*"): ("GET",),
        }
        if not self.generation.status_route:
            del routes[("plugins", "portables", "*", "status")]
        key: tuple[str, ...] | None = None
        for pattern in routes:
            if len(pattern) == len(parts) and all(p == "*" or p == q
                                                  for p, q in zip(pattern, parts)):
                key = pattern
        if key is None:
            return 404, "text/plain; charset=utf-8", b"404 page not found\n"
        if method not in routes[key]:
            return 405, "", b""
        name = parts[2] if len(parts) > 2 else ""
        if key == ():
            return self._json({"version": self.version, "os": "linux", "arch": "amd64",
                               "upTimeSeconds": 1})
        if key in (("streams",), ("rules",)):
            return self._json(sorted(self.streams) if key == ("streams",) else
                              [{"id": r, "name": r, "status": rule.get("status", "running")}
                               for r, rule in sorted(self.rules.items())])
        if key in (("streams", "*"), ("rules", "*")):
            table = self.streams if key[0] == "streams" else self.rules
            if parts[1] not in table:
                payload = json.dumps({"error": NOT_FOUND, "message": f"{parts[1]} is not found"})
                return 404, "text/plain; charset=utf-8", payload.encode()
            return self._json(table[parts[1]])
        try:
            if key == ("plugins", "portables"):
                if method == "GET":
                    return self._json(list(self.registry.values()))
                desc = self._decode(body, "Invalid body: Error decoding the portable plugin json")
                self._register(desc, "portable plugin create command error")
                return 201, "", f"portable plugin {desc['name']} is created".encode()
            if key == ("plugins", "portables", "*"):
                if method == "GET":
                    if name not in self.registry:
                        raise Failure(f"describe portable plugin {name} error: not found",
                                      NOT_FOUND)
                    return self._json(self.registry[name])
                if method == "DELETE":
                    self._delete(name, f"delete portable plugin {name} error")
                    return 200, "", f"portable plugin {name} is deleted".encode()
                desc = self._decode(body, "Invalid body: Error decoding the portable plugin json")
                try:
                    self._delete(name, "")
                except Failure:
                    pass  # eKuiper only logs a failed delete before installing again
                self._register(desc, "portable plugin update command error")
                return 200, "", f"portable plugin {desc['name']} is updated".encode()
            if key == ("plugins", "portables", "*", "status"):
                if name not in self.statuses:
                    raise Failure(f"portable plugin {name} not found: not found", NOT_FOUND)
                return self._json(self.statuses[name])
            if key == ("config", "uploads"):
                if method == "GET":
                    return self._json([str(p) for p in sorted(self.uploads.iterdir())])
                return self._upload(ctype, body)
            target = self.uploads / name
            if not target.is_file():
                raise Failure(f"Error deleting the file: remove {name}: no such file or directory")
            target.unlink()
            return 200, "", b"ok"
        except Failure as exc:
            payload = json.dumps({"error": exc.code, "message": str(exc)}).encode() + b"\n"
            return (404 if exc.code == NOT_FOUND else 400), "text/plain; charset=utf-8", payload

    @staticmethod
    def _json(data: Any) -> tuple[int, str, bytes]:
        return 200, "application/json", json.dumps(data).encode()

    @staticmethod
    def _decode(body: bytes, prefix: str) -> dict[str, Any]:
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise Failure(f"{prefix}: {exc}") from None
        if not isinstance(data, dict):
            raise Failure(f"{prefix}: not an object")
        return data

    # -- behaviour --------------------------------------------------------------------
    def _register(self, desc: dict[str, Any], prefix: str) -> None:
        name = str(desc.get("name", "")).strip(" ")
        uri = str(desc.get("file", ""))
        if not name:
            raise Failure(f"{prefix}: invalid name {name}: should not be empty")
        parsed = urllib.parse.urlsplit(uri)
        valid = (parsed.scheme in ("http", "https") and parsed.netloc) or \
            (parsed.scheme == "file" and not parsed.netloc and parsed.path)
        if not valid or not uri.endswith(".zip"):
            raise Failure(f"{prefix}: invalid uri {uri}")
        if name in self.registry:
            raise Failure(f"{prefix}: invalid name {name}: duplicate")
        try:
            data = self._download(uri)
        except Failure as exc:
            raise Failure(f"{prefix}: fail to download file {uri}: {exc}") from None
        zip_path = self.plugins_dir / f"{name}.zip"
        zip_path.write_bytes(data)
        try:
            manifest = rules.install(zip_path, name, self.root)
            self._run_install_sh(self.plugins_dir / name)
        except (rules.InstallFailure, ValueError) as exc:
            shutil.rmtree(self.plugins_dir / name, ignore_errors=True)
            raise Failure(f"{prefix}: fail to install plugin: {exc}") from None
        finally:
            zip_path.unlink()
        info = {"name": name, "version": manifest.get("version", ""),
                "language": manifest["language"],
                "executable": str(self.plugins_dir / name / str(manifest["executable"])),
                "sources": manifest.get("sources") or [], "sinks": manifest.get("sinks") or [],
                "functions": manifest.get("functions") or []}
        self.registry[name] = info
        self.statuses[name] = {"refCount": {}, "status": "running", "errMsg": ""}

    def _run_install_sh(self, folder: Path) -> None:
        script = folder / "install.sh"
        if self.install_env is None or not script.is_file():
            return
        done = subprocess.run(["/bin/sh", str(script)], cwd=folder, env=self.install_env,
                              capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise rules.InstallFailure(f"err:exit status {done.returncode} stdout:{done.stdout} "
                                       f"stderr:{done.stderr}")

    def _download(self, uri: str) -> bytes:
        parsed = urllib.parse.urlsplit(uri)
        if parsed.scheme == "file":
            path = Path(urllib.parse.unquote(parsed.path))
            inside = self.uploads.resolve() in path.resolve().parents
            if not self.allow_external_file_access and not inside:
                raise Failure(f"file access denied: path must be under {self.uploads}")
            if not self.shares_file_system and not inside:
                raise Failure(f"open {path}: no such file or directory")
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise Failure(f"open {path}: {str(exc.strerror).lower()}") from None
            self.downloads.append(uri)
            return data
        host = parsed.hostname or ""
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is not None and (ip.is_private or ip.is_loopback) and not self.enable_private_net:
            raise Failure(f"Get \"{uri}\": dial tcp {host}:{parsed.port}: ip {host} is in "
                          "internal network")
        try:
            with urllib.request.urlopen(uri, timeout=10) as resp:
                data = bytes(resp.read())
        except urllib.error.HTTPError as exc:
            raise Failure(f"cannot download the file with status: {exc.code} {exc.reason}") \
                from None
        except OSError as exc:
            raise Failure(f"Get \"{uri}\": {exc}") from None
        self.downloads.append(uri)
        return data

    def _delete(self, name: str, prefix: str) -> None:
        info = self.registry.pop(name, None)
        if info is None:
            raise Failure(f"{prefix}: portable plugin {name} is not found")
        shutil.rmtree(self.plugins_dir / name, ignore_errors=True)
        for kind in ("sources", "sinks", "functions"):
            for sym in info[kind]:
                for base in (self.root / "etc", self.root / "data"):
                    for suffix in (".yaml", ".json"):
                        (base / kind / f"{sym}{suffix}").unlink(missing_ok=True)
        if name in self.statuses:
            self.statuses[name] = {"refCount": {}, "status": "stop", "errMsg": ""}

    def _upload(self, ctype: str, body: bytes) -> tuple[int, str, bytes]:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + body)
        if not message.is_multipart():
            raise Failure("Error parse the multi part form: request Content-Type isn't "
                          "multipart/form-data")
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "uploadFile":
                filename = Path(str(part.get_filename())).name
                target = self.uploads / filename
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                target.write_bytes(payload)
                return 201, "", html.escape(str(target)).encode()
        raise Failure("Error Retrieving the File: http: no such file")
