"""``fleet status`` and ``rollout`` through the command line: tables, --json, exit codes,
drift, and Ctrl-C on a real process."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.fake_fleet import dead_url, fleet
from helpers.fleet_runs import versions, write_fleet

from ekuiper_sdk.tools.cli import main
from ekuiper_sdk.tools.fleet.releases import Release
from ekuiper_sdk.tools.manifest import read_zip_manifest


@pytest.fixture(scope="module")
def zips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Release]:
    return versions(tmp_path_factory.mktemp("status-zips"), "1.0", "2.0")


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    """The processes a test starts; any still running at its end (a failed check) is killed."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_status_shows_versions_rules_and_the_drift(tmp_path: Path,
                                                   zips: dict[str, Release]) -> None:
    releases = str(tmp_path / "releases")
    plugin = zips["1.0"].plugin
    with fleet(tmp_path, 5) as servers:
        urls = [s.url for s in servers]
        f = write_fleet(tmp_path / "fleet.txt", urls)
        code, _, _ = cli("rollout", str(zips["1.0"].path), "--fleet", str(f), "--settle", "0",
                         "--parallel", "5", "--releases", releases)
        assert code == 0
        code, _, _ = cli("rollout", str(zips["2.0"].path), "--fleet",
                         str(write_fleet(tmp_path / "some.txt", urls[:3])), "--settle", "0",
                         "--parallel", "3", "--releases", releases)
        assert code == 0
        servers[0].add_rule("h25r1", plugin, read_zip_manifest(zips["1.0"].path).functions[0])
        code, out, _ = cli("fleet", "status", plugin, "--fleet", str(f), "--releases", releases)
        assert code == 1   # drift fails the command
        assert f"{plugin}: most servers run 2.0 ({zips['2.0'].sha256[:12]}); drift: " in out
        assert out.count("(1.0)") == 2 and "h25r1 (running)" in out
        code, out, _ = cli("fleet", "status", plugin, "--fleet", str(f), "--releases",
                           releases, "--json")
        data = json.loads(out)
        assert code == 1 and data["ok"] is False
        assert data["majority"] == {"version": "2.0", "sha256": zips["2.0"].sha256}
        assert data["drift"] == urls[3:]
        assert data["servers"][0]["rules"][0]["id"] == "h25r1"
        assert [s["version"] for s in data["servers"]] == ["2.0"] * 3 + ["1.0"] * 2
        # The whole fleet on one zip: no drift, exit 0.
        cli("rollout", str(zips["2.0"].path), "--fleet", str(f), "--settle", "0",
            "--releases", releases)
        code, out, _ = cli("fleet", "status", "--fleet", str(f), "--releases", releases)
        assert code == 0 and f"{plugin}: every server that answered runs 2.0" in out


def test_status_reports_an_unreachable_server_and_a_plugin_in_error(
        tmp_path: Path, zips: dict[str, Release]) -> None:
    plugin = zips["1.0"].plugin
    with fleet(tmp_path, 2) as servers:
        dead = dead_url()
        f = write_fleet(tmp_path / "fleet.txt", [s.url for s in servers] + [dead])
        cli("rollout", str(zips["1.0"].path), "--fleet", str(f), "--settle", "0",
            "--skip-unreachable", "--releases", str(tmp_path / "r"))
        servers[1].statuses[plugin] = {"refCount": {}, "status": "error",
                                       "errMsg": "signal: killed"}
        code, out, _ = cli("fleet", "status", plugin, "--fleet", str(f), "--timeout", "2",
                           "--releases", str(tmp_path / "r"))
        assert code == 1
        assert "error: signal: killed" in out
        assert f"{dead.split('://')[1]}  unreachable" in out


def test_rollout_json_and_the_table(tmp_path: Path, zips: dict[str, Release]) -> None:
    with fleet(tmp_path, 3) as servers:
        servers[2].dies_on = {"1.0": 0.0}
        f = write_fleet(tmp_path / "fleet.txt", [s.url for s in servers])
        code, out, err = cli("rollout", str(zips["1.0"].path), "--fleet", str(f), "--settle",
                             "0.1", "--releases", str(tmp_path / "r"), "--json")
        data = json.loads(out)
        assert code == 3 and data["exit"] == 3 and data["outcome"] == "rolled back"
        assert [s["state"] for s in data["servers"]] == ["rolled back"] * 3
        assert "check FAILED: plugin status error: signal: killed" in err
        servers[2].dies_on = {}
        code, out, _ = cli("rollout", str(zips["1.0"].path), "--fleet", str(f), "--settle",
                           "0.1", "--releases", str(tmp_path / "r"))
        assert code == 0
        lines = out.splitlines()
        assert lines[-5].split() == ["server", "before", "now", "state", "detail"]
        assert lines[-4].split()[1:4] == ["absent", "1.0", "checked"]
        assert lines[-1].startswith("done: 3 server(s) changed, 0 skipped")


def test_bad_options_are_one_line_errors(tmp_path: Path, zips: dict[str, Release],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli("rollout", str(zips["1.0"].path), "--fleet", str(tmp_path / "none"))
    assert code == 1 and err.count("\n") == 1 and "--fleet" in err
    code, _, _ = cli("rollout", str(zips["1.0"].path), "--fleet", "x", "--parallel", "0")
    assert code == 2 and "--parallel: must be at least 1" in capsys.readouterr().err
    code, _, err = cli("rollout", str(zips["1.0"].path), "--fleet",
                       str(write_fleet(tmp_path / "f.txt", ["h:1"])),
                       "--previous", str(zips["1.0"].path).replace("1.0", "9.9"))
    assert code == 1 and "no such file" in err.lower()


def test_ctrl_c_stops_between_steps_and_says_where_each_server_stands(
        tmp_path: Path, zips: dict[str, Release], children: list[subprocess.Popen[str]]) -> None:
    with fleet(tmp_path, 3) as servers:
        f = write_fleet(tmp_path / "fleet.txt", [s.url for s in servers])
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "ekuiper_sdk.tools.cli", "rollout", str(zips["1.0"].path),
             "--fleet", str(f), "--settle", "30", "--releases", str(tmp_path / "r")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        children.append(proc)
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if " install ok: " in line:     # the canary is changed and being watched
                break
        time.sleep(0.3)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=20)
        assert time.monotonic() - started < 5    # not the 30 s window
        assert proc.returncode == 130, "".join(seen) + rest
        assert "interrupted: finishing the steps under way" in rest
        assert "check FAILED: interrupted" in rest
        table = rest.splitlines()
        assert any(line.split()[1:4] == ["absent", "1.0", "interrupted"] for line in table)
        assert sum("not started" in line for line in table) == 2
        assert servers[1].version_of(zips["1.0"].plugin) is None


def test_a_first_ctrl_c_during_the_rollback_does_not_cut_it_short(
        tmp_path: Path, zips: dict[str, Release], children: list[subprocess.Popen[str]]) -> None:
    releases = str(tmp_path / "r")
    with fleet(tmp_path, 3) as servers:
        f = write_fleet(tmp_path / "fleet.txt", [s.url for s in servers])
        assert cli("rollout", str(zips["1.0"].path), "--fleet", str(f), "--settle", "0",
                   "--parallel", "3", "--releases", releases)[0] == 0
        servers[2].dies_on = {"2.0": 0.0}
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "ekuiper_sdk.tools.cli", "rollout", str(zips["2.0"].path),
             "--fleet", str(f), "--settle", "1.5", "--canary", "0", "--parallel", "3",
             "--releases", releases],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        children.append(proc)
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "rolling back 3 server(s)" in line:
                break
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 3, "".join(seen) + rest
        assert "rolling back: it goes on to the end" in rest
        assert rest.count("recheck ok") == 3
        assert [s.version_of(zips["1.0"].plugin) for s in servers] == ["1.0"] * 3


def test_ctrl_c_ends_a_fleet_status_at_once(tmp_path: Path,
                                            children: list[subprocess.Popen[str]]) -> None:
    with fleet(tmp_path, 2, delay=5.0) as servers:
        f = write_fleet(tmp_path / "fleet.txt", [s.url for s in servers])
        proc = subprocess.Popen(
            [sys.executable, "-m", "ekuiper_sdk.tools.cli", "fleet", "status", "demo",
             "--fleet", str(f), "--timeout", "20"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        children.append(proc)
        time.sleep(1.0)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert time.monotonic() - started < 2
        assert proc.returncode == 130 and out == "" and err.strip() == "interrupted"
