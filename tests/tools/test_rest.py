"""The REST client against a local server that answers as eKuiper's plugin handlers do."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.fake_ekuiper_rest import FakeEkuiper
from helpers.pack_helpers import manifest_of, new_plugin, zip_folder

from ekuiper_sdk.errors import PackagingError, RestError
from ekuiper_sdk.tools import pack as pack_mod
from ekuiper_sdk.tools import rest
from ekuiper_sdk.tools.cli import option_wording
from ekuiper_sdk.tools.rest import RestClient, install_zip


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """One packed plugin for the module; every test installs it into its own server."""
    tmp = tmp_path_factory.mktemp("packed")
    plugin = new_plugin(tmp)
    out = tmp / "dist" / f"{plugin.name}.zip"
    pack_mod.pack(plugin, out)
    return plugin.name, out


@pytest.fixture
def ek(tmp_path: Path) -> Iterator[FakeEkuiper]:
    with FakeEkuiper(tmp_path / "ekuiper") as server:
        yield server


def client(server: FakeEkuiper) -> RestClient:
    return RestClient(server.url, timeout=20)


def test_install_by_file_url_on_a_local_server(ek: FakeEkuiper,
                                               packed: tuple[str, Path]) -> None:
    name, zip_path = packed
    log = io.StringIO()
    result = install_zip(client(ek), zip_path, log=log)
    assert result.via == "file" and result.url == zip_path.resolve().as_uri()
    assert result.message == f"portable plugin {name} is created"
    assert result.status == {"refCount": {}, "status": "running", "errMsg": "",
                             "server": {"version": "2.4.0", "generation": "2.1.3+"}}
    method, path, body = ek.requests[0]
    assert (method, path) == ("POST", "/plugins/portables")
    assert json.loads(body) == {"name": name, "file": zip_path.resolve().as_uri()}
    assert ek.downloads == [result.url]
    assert (ek.plugins_dir / name / "main.py").is_file()


def test_auto_falls_back_to_upload_when_the_file_system_is_not_shared(
        tmp_path: Path, packed: tuple[str, Path]) -> None:
    name, zip_path = packed
    with FakeEkuiper(tmp_path / "ek", shares_file_system=False) as server:
        log = io.StringIO()
        result = install_zip(client(server), zip_path, log=log)
        assert result.via == "upload"
        assert "uploaded the zip instead" in log.getvalue()
        assert result.url.startswith("file://" + str(server.uploads))
        assert name in server.registry
        # the uploaded copy is removed once eKuiper has installed it
        assert list(server.uploads.iterdir()) == []
        methods = [(m, p.split("?")[0]) for m, p, _ in server.requests]
        assert ("POST", "/config/uploads") in methods
        assert any(m == "DELETE" and p.startswith("/config/uploads/") for m, p in methods)


def test_upload_works_when_external_files_are_forbidden(tmp_path: Path,
                                                        packed: tuple[str, Path]) -> None:
    name, zip_path = packed
    with FakeEkuiper(tmp_path / "ek", allow_external_file_access=False) as server:
        with pytest.raises(RestError) as info:
            install_zip(client(server), zip_path, via="file", log=io.StringIO())
        assert "file access denied" in info.value.message
        assert "via='upload'" in info.value.hint and "--" not in info.value.hint
        result = install_zip(client(server), zip_path, via="upload", log=io.StringIO())
        assert result.via == "upload" and name in server.registry


def test_serve_is_downloaded_over_http(tmp_path: Path, packed: tuple[str, Path]) -> None:
    name, zip_path = packed
    with FakeEkuiper(tmp_path / "ek", enable_private_net=True) as server:
        log = io.StringIO()
        result = install_zip(client(server), zip_path, via="serve",
                             serve_address="127.0.0.1:0", log=log)
        assert result.via == "serve" and result.url.startswith("http://127.0.0.1:")
        assert server.downloads == [result.url]
        assert f"downloaded {zip_path.name}" in log.getvalue()
        assert name in server.registry
    # the one-file server is gone after the call
    port = int(result.url.split(":")[2].split("/")[0])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_serve_on_a_private_address_is_refused_by_default(ek: FakeEkuiper,
                                                          packed: tuple[str, Path]) -> None:
    _, zip_path = packed
    with pytest.raises(RestError) as info:
        install_zip(client(ek), zip_path, via="serve", serve_address="127.0.0.1:0",
                    log=io.StringIO())
    assert "is in internal network" in info.value.message
    assert "enablePrivateNet" in info.value.hint and info.value.status == 400


def test_duplicate_install_shows_ekuipers_text_and_suggests_update(
        ek: FakeEkuiper, packed: tuple[str, Path]) -> None:
    name, zip_path = packed
    install_zip(client(ek), zip_path, log=io.StringIO())
    with pytest.raises(RestError) as info:
        install_zip(client(ek), zip_path, log=io.StringIO())
    assert info.value.message == \
        f"portable plugin create command error: invalid name {name}: duplicate"
    assert "ekuiper-plugin update" in str(info.value)
    result = install_zip(client(ek), zip_path, update=True, log=io.StringIO())
    assert result.message == f"portable plugin {name} is updated"
    # Then what the server is (GET /), then the plugin's status.
    assert [r[:2] for r in ek.requests[-3:]] == [
        ("PUT", f"/plugins/portables/{name}"), ("GET", "/"),
        ("GET", f"/plugins/portables/{name}/status")]


def test_list_describe_status_delete(ek: FakeEkuiper, packed: tuple[str, Path]) -> None:
    name, zip_path = packed
    c = client(ek)
    assert c.list_plugins() == []
    install_zip(c, zip_path, log=io.StringIO())
    [info] = c.list_plugins()
    assert info["name"] == name and info["language"] == "python"
    assert c.describe(name)["executable"].endswith(f"/{name}/main.py")
    assert c.status(name)["status"] == "running"
    assert c.delete(name) == f"portable plugin {name} is deleted"
    with pytest.raises(RestError) as gone:
        c.delete(name)
    assert gone.value.status == 400
    assert gone.value.message == \
        f"delete portable plugin {name} error: portable plugin {name} is not found"
    with pytest.raises(RestError) as missing:
        c.status("never-installed")
    assert missing.value.status == 404
    assert missing.value.message == "portable plugin never-installed not found: not found"


def test_ekuipers_install_error_is_shown(ek: FakeEkuiper, tmp_path: Path) -> None:
    # A zip with a top folder, sent without the local check, fails on the server.
    plugin = new_plugin(tmp_path)
    bad = zip_folder(plugin, tmp_path / "bad.zip", top=plugin.name)
    with pytest.raises(RestError) as info:
        client(ek).install(plugin.name, bad.resolve().as_uri())
    assert "fail to install plugin: missing or invalid json file" in info.value.message
    assert info.value.hint.startswith("the zip needs <name>.json at its root")
    # install_zip refuses the same zip before calling the server
    before = len(ek.requests)
    with pytest.raises(PackagingError, match="inside a top folder"):
        install_zip(client(ek), bad, log=io.StringIO())
    assert len(ek.requests) == before


def test_unreachable_server(packed: tuple[str, Path]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(RestError) as info:
        RestClient(f"127.0.0.1:{port}", timeout=5).list_plugins()
    text = str(info.value)
    assert text.startswith(f"cannot reach eKuiper at http://127.0.0.1:{port}")
    assert "\n" not in text and text.endswith("start it or pass server")


@contextlib.contextmanager
def answering(status: int, body: bytes, seen: list[str | None]) -> Iterator[str]:
    """A one-off HTTP server on loopback that answers every GET with ``status`` and ``body``
    and records the Authorization header it got; yields its ``host:port``."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_server_that_is_not_ekuiper(tmp_path: Path) -> None:
    with answering(500, b"boom: database is locked\n", []) as address:
        with pytest.raises(RestError) as info:
            RestClient(f"http://{address}").list_plugins()
    assert info.value.status == 500 and info.value.message == "boom: database is locked"


def test_wrong_path_is_explained(ek: FakeEkuiper) -> None:
    with pytest.raises(RestError) as info:
        RestClient(ek.url + "/nested").list_plugins()
    assert info.value.status == 404 and "wrong server?" in info.value.hint


def test_token_is_sent(ek: FakeEkuiper, packed: tuple[str, Path]) -> None:
    seen: list[str | None] = []
    with answering(401, b"missing_token\n", seen) as address:
        with pytest.raises(RestError) as info:
            RestClient(address, token="abc").list_plugins()
    assert seen == ["abc"] and "pass token (" in info.value.hint
    # The command line words the same error with its own option.
    assert "pass --token (" in str(info.value.worded(option_wording))


def test_server_urls_and_local_detection() -> None:
    assert rest.normalize_server("localhost:9081") == "http://localhost:9081"
    with pytest.raises(RestError):
        rest.normalize_server("ftp://x")
    assert rest.is_local_server("http://localhost:9081")
    assert not rest.is_local_server("http://192.0.2.10:9081")  # TEST-NET, never local


def test_zip_server_serves_only_its_path(packed: tuple[str, Path]) -> None:
    import urllib.error
    import urllib.request
    _, zip_path = packed
    with rest.ZipServer(zip_path, bind="127.0.0.1:0") as zs:
        assert urllib.request.urlopen(zs.url).read() == zip_path.read_bytes()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(zs.url.rsplit("/", 2)[0] + "/guess/" + zip_path.name)
    assert zs.downloads == 1


def test_manifest_name_in_zip_is_used(ek: FakeEkuiper, packed: tuple[str, Path],
                                      tmp_path: Path) -> None:
    name, zip_path = packed
    renamed = tmp_path / "whatever.zip"
    renamed.write_bytes(zip_path.read_bytes())
    result = install_zip(client(ek), renamed, log=io.StringIO())
    assert result.name == name
    assert manifest_of(ek.plugins_dir / name)["executable"] == "main.py"


def test_the_status_is_reported_once_it_settles(ek: FakeEkuiper, packed: tuple[str, Path],
                                                tmp_path: Path) -> None:
    """eKuiper answers once the plugin shook hands; one that dies a moment later shows
    running first. The command line watches the status and reports the death."""
    import time

    from ekuiper_sdk.tools.cli import main

    name, zip_path = packed

    def dies_soon() -> None:
        while name not in ek.statuses:
            time.sleep(0.01)
        time.sleep(0.5)
        ek.statuses[name] = {"refCount": {}, "status": "error", "errMsg": "exit status 1"}

    killer = threading.Thread(target=dies_soon, daemon=True)
    killer.start()
    out, err = io.StringIO(), io.StringIO()
    began = time.monotonic()
    code = main(["install", str(zip_path), "--server", ek.url, "--settle", "4"], out=out,
                err=err)
    took = time.monotonic() - began
    killer.join()
    assert code == 1, err.getvalue()
    note = f" [eKuiper {ek.version}, generation {ek.generation.name}]"
    assert out.getvalue().endswith(f"; status: error (exit status 1){note}\n"), out.getvalue()
    assert took < 3.5, f"the watch went on after the error ({took:.1f} s)"
    # A plugin that stays up is reported after the whole watch, and says so.
    out = io.StringIO()
    began = time.monotonic()
    assert main(["update", str(zip_path), "--server", ek.url, "--settle", "0.6"], out=out,
                err=io.StringIO()) == 0
    assert time.monotonic() - began >= 0.6
    assert out.getvalue().endswith(f"; status: running after 0.6 s{note}\n"), out.getvalue()
