"""Tokens and server URLs: checked, trimmed, refused in one line, never echoed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ekuiper_sdk.errors import RestError
from ekuiper_sdk.tools import credentials

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJlS3VpcGVyIn0.SIGNATUREsecretpart"


@pytest.fixture
def server() -> Iterator[tuple[str, list[str | None]]]:
    """An HTTP server answering ``[]`` that records each request's Authorization header."""
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server name
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def cli(*argv: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EKUIPER_TOKEN", "EKUIPER_SERVER")}
    if token is not None:
        env["EKUIPER_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "ekuiper_sdk.tools.cli", *argv], env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_token_from_a_crlf_file_is_trimmed_and_works(
        server: tuple[str, list[str | None]]) -> None:
    url, seen = server
    done = cli("list", "--server", url, token=TOKEN + "\r\n")
    assert done.returncode == 0, done.stderr
    assert seen == [TOKEN]


@pytest.mark.parametrize("bad", ["\r", "\x01", "\n", "\u2028"])
def test_a_token_with_a_bad_character_inside_is_one_line_that_never_shows_it(
        server: tuple[str, list[str | None]], bad: str) -> None:
    url, seen = server
    done = cli("list", "--server", url, token=TOKEN[:20] + bad + TOKEN[20:])
    assert done.returncode != 0
    assert seen == []
    for out in (done.stdout, done.stderr):
        assert "SIGNATURE" not in out and "eyJ" not in out and "Traceback" not in out
    [line] = done.stderr.strip().splitlines()
    assert "the token (from --token or $EKUIPER_TOKEN) has" in line
    assert "at character 21 of" in line


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_a_password_in_the_server_url_is_refused_and_never_printed(
        server: tuple[str, list[str | None]], json_flag: list[str]) -> None:
    url, seen = server
    with_userinfo = url.replace("http://", "http://admin:hunter2@")
    done = cli("list", "--server", with_userinfo, *json_flag)
    assert done.returncode != 0
    assert seen == []
    assert "hunter2" not in done.stdout + done.stderr
    assert "admin" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    text = done.stdout if json_flag else done.stderr
    if json_flag:
        text = json.loads(done.stdout)["error"]
    assert "carries a user name or password, which eKuiper does not take" in text
    assert "***@127.0.0.1" in text


def test_clean_token_and_redact() -> None:
    assert credentials.clean_token("  \t") is None
    assert credentials.clean_token(None) is None
    assert credentials.clean_token(TOKEN + "\r") == TOKEN
    with pytest.raises(RestError) as info:
        credentials.clean_token("ab\x7fcd")
    assert "U+007F at character 3 of 5" in str(info.value) and "ab" not in str(info.value)
    assert credentials.redact("admin:pw@h:1") == "http://***@h:1"
    assert credentials.redact("http://h:1") == "http://h:1"
