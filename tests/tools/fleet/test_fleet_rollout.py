"""``rollout`` against many test REST servers in this process: canary, waves, health gate,
rollback, skips, refusals, and the time a wave takes."""

from __future__ import annotations

import http.server
import io
import shutil
import threading
import time
import zipfile
from pathlib import Path

import pytest
from helpers.fake_fleet import FleetServer, dead_url, fleet
from helpers.fleet_runs import run, versions

from ekuiper_sdk.tools.fleet.inventory import Server
from ekuiper_sdk.tools.fleet.releases import Release, ReleaseHistory
from ekuiper_sdk.tools.fleet.rollout import Options, rollout
from ekuiper_sdk.tools.manifest import read_zip_manifest
from ekuiper_sdk.tools.rest import RestClient, install_zip


@pytest.fixture(scope="module")
def zips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Release]:
    return versions(tmp_path_factory.mktemp("fleet-zips"), "1.0", "2.0")


def on_v1(servers: list[FleetServer], v1: Release, history: ReleaseHistory) -> None:
    """Every server on 1.0 through a first rollout, so the history knows its zip."""
    result, _ = run([s.url for s in servers], v1, history, parallel=len(servers))
    assert result.outcome == "done", result.message
    assert all(s.version_of(v1.plugin) == "1.0" for s in servers)


def test_a_good_zip_reaches_every_server_canary_first(tmp_path: Path,
                                                      zips: dict[str, Release]) -> None:
    history = ReleaseHistory(tmp_path / "releases")
    with fleet(tmp_path, 5) as servers:
        on_v1(servers, zips["1.0"], history)
        function = read_zip_manifest(zips["1.0"].path).functions[0]
        servers[0].add_rule("h25rule", zips["1.0"].plugin, function)
        result, lines = run([s.url for s in servers], zips["2.0"], history, canary=1,
                            parallel=2)
        assert result.exit_code == 0 and result.outcome == "done"
        assert [s.version_of(zips["2.0"].plugin) for s in servers] == ["2.0"] * 5
        assert [len(w) for w in result.waves] == [1, 2, 2]
        assert result.waves[0] == [servers[0].url]
        assert [p.state for p in result.plans] == ["checked"] * 5
        # One line per server per step: the plan, the update, the check.
        first = servers[0].url.split("://")[1]
        mine = [line for line in lines.splitlines() if line.startswith(first + ":")]
        assert [line.split(":")[2].strip().split()[0] for line in mine] == \
            ["change", "update", "check"]
        # The canary's rule was found and kept running.
        assert "1 rule(s) kept running" in lines
    last = history.last(servers[3].url, zips["2.0"].plugin)
    assert last is not None and last.sha256 == zips["2.0"].sha256
    assert (history.folder / last.zip).read_bytes() == zips["2.0"].path.read_bytes()


def test_a_canary_that_fails_its_check_rolls_back_and_no_other_server_changes(
        tmp_path: Path, zips: dict[str, Release]) -> None:
    history = ReleaseHistory(tmp_path / "releases")
    with fleet(tmp_path, 4) as servers:
        on_v1(servers, zips["1.0"], history)
        servers[0].dies_on = {"2.0": 0.05}    # its plugin dies inside the window
        before = [len(s.history) for s in servers]
        result, lines = run([s.url for s in servers], zips["2.0"], history, settle=0.4)
        assert result.outcome == "rolled back" and result.exit_code == 3
        assert [s.version_of(zips["1.0"].plugin) for s in servers] == ["1.0"] * 4
        assert servers[0].history[before[0]:] == [("install", "2.0"), ("install", "1.0")]
        assert all(len(s.history) == n for s, n in zip(servers[1:], before[1:]))
        assert [p.state for p in result.plans] == ["rolled back"] + ["not started"] * 3
        assert "signal: killed" in result.plans[0].detail
        assert "rolling back 1 server(s)" in lines
    assert history.last(servers[0].url, zips["1.0"].plugin).version == "1.0"  # type: ignore[union-attr]


def test_a_failure_in_a_later_wave_puts_every_changed_server_back(
        tmp_path: Path, zips: dict[str, Release]) -> None:
    history = ReleaseHistory(tmp_path / "releases")
    with fleet(tmp_path, 6) as servers:
        on_v1(servers, zips["1.0"], history)
        # eKuiper deletes before it installs: a failed install leaves no plugin behind.
        servers[3].install_fails_on = ("2.0",)
        result, _ = run([s.url for s in servers], zips["2.0"], history, canary=1, parallel=2)
        assert result.exit_code == 3, result.message
        states = [p.state for p in result.plans]
        assert states == ["rolled back"] * 5 + ["not started"]
        assert [s.version_of(zips["1.0"].plugin) for s in servers] == ["1.0"] * 6
        assert "control handshake error" in result.plans[3].detail
        assert servers[5].history[-1] == ("install", "1.0") and len(servers[5].history) == 1


def test_a_server_that_had_no_plugin_loses_it_again_on_rollback(
        tmp_path: Path, zips: dict[str, Release]) -> None:
    history = ReleaseHistory(tmp_path / "releases")
    with fleet(tmp_path, 2) as servers:
        servers[1].dies_on = {"1.0": 0.0}
        result, _ = run([s.url for s in servers], zips["1.0"], history, parallel=2)
        assert result.exit_code == 3
        assert [s.version_of(zips["1.0"].plugin) for s in servers] == [None, None]
        assert history.last(servers[0].url, zips["1.0"].plugin).absent  # type: ignore[union-attr]


@pytest.mark.parametrize("knob, reason", [
    ("stops_rules_on", "rule h25rule is stopped (was running)"),
    ("starves_on", "rule h25rule took no records in 0.3 s (it was taking them before)"),
])
def test_the_gate_watches_the_rules_that_used_the_plugin(
        tmp_path: Path, zips: dict[str, Release], knob: str, reason: str) -> None:
    history = ReleaseHistory(tmp_path / "releases")
    function = read_zip_manifest(zips["1.0"].path).functions[0]
    with fleet(tmp_path, 2) as servers:
        on_v1(servers, zips["1.0"], history)
        for s in servers:
            s.add_rule("h25rule", zips["1.0"].plugin, function)
        setattr(servers[1], knob, ("2.0",))
        result, _ = run([s.url for s in servers], zips["2.0"], history, settle=0.3,
                        observe=0.2, canary=1)
        assert result.exit_code == 3
        assert result.plans[1].detail == reason
        assert [s.version_of(zips["1.0"].plugin) for s in servers] == ["1.0", "1.0"]


def test_a_rerun_skips_the_servers_already_on_this_zip(tmp_path: Path,
                                                       zips: dict[str, Release]) -> None:
    history = ReleaseHistory(tmp_path / "releases")
    with fleet(tmp_path, 5) as servers:
        on_v1(servers, zips["1.0"], history)
        urls = [s.url for s in servers]
        # A rollout cut short after two servers, then the whole fleet again.
        cut, _ = run(urls[:2], zips["2.0"], history, parallel=2)
        assert cut.outcome == "done"
        again, _ = run(urls, zips["2.0"], history, parallel=5)
        assert again.exit_code == 0
        assert [p.state for p in again.plans] == ["skipped"] * 2 + ["checked"] * 3
        puts = [sum(m == "PUT" for m, _, _ in s.requests) for s in servers]
        assert puts == [1, 1, 1, 1, 1]
        third, _ = run(urls, zips["2.0"], history)
        assert [p.state for p in third.plans] == ["skipped"] * 5
        assert "already runs this zip" in third.plans[0].detail


def test_the_same_version_with_other_content_is_not_skipped(tmp_path: Path,
                                                            zips: dict[str, Release]) -> None:
    history = ReleaseHistory(tmp_path / "releases")
    rebuilt = tmp_path / "rebuilt.zip"
    shutil.copyfile(zips["2.0"].path, rebuilt)
    with zipfile.ZipFile(rebuilt, "a") as zf:
        zf.writestr("NOTES.txt", "the same version, rebuilt with other content\n")
    other = Release.of_zip(rebuilt)
    assert (other.plugin, other.version) == (zips["2.0"].plugin, "2.0")
    assert other.sha256 != zips["2.0"].sha256
    with fleet(tmp_path, 1) as servers:
        result, _ = run([servers[0].url], zips["2.0"], history)
        assert result.plans[0].state == "checked"
        result, _ = run([servers[0].url], other, history)
        assert result.plans[0].state == "checked"        # same version, other hash
        assert (servers[0].plugins_dir / other.plugin / "NOTES.txt").is_file()
        result, _ = run([servers[0].url], other, history)
        assert result.plans[0].state == "skipped"


def test_unreachable_servers_stop_the_rollout_before_any_change(
        tmp_path: Path, zips: dict[str, Release]) -> None:
    history = ReleaseHistory(tmp_path / "releases")
    with fleet(tmp_path, 3) as servers:
        urls = [s.url for s in servers] + [dead_url()]
        result, lines = run(urls, zips["1.0"], history)
        assert result.exit_code == 1 and result.outcome == "refused"
        assert all(s.version_of(zips["1.0"].plugin) is None for s in servers)
        assert "unreachable" in lines and "--skip-unreachable" in result.message
        result, _ = run(urls, zips["1.0"], history, skip_unreachable=True, parallel=3)
        assert result.exit_code == 0
        assert [p.state for p in result.plans] == ["checked"] * 3 + ["unreachable"]


def test_a_server_slower_than_the_read_timeout_counts_as_unreachable_at_once(
        tmp_path: Path, zips: dict[str, Release]) -> None:
    history = ReleaseHistory(tmp_path / "releases")
    with fleet(tmp_path, 2) as servers:
        servers[1].delay = 2.0
        started = time.monotonic()
        result, _ = run([s.url for s in servers], zips["1.0"], history, read_timeout=0.3)
        assert time.monotonic() - started < 1.5
        assert result.outcome == "refused"
        assert "did not answer GET" in result.plans[1].detail
        assert servers[0].version_of(zips["1.0"].plugin) is None


class NotEkuiper(http.server.BaseHTTPRequestHandler):
    """A server that answers every request with JSON eKuiper never sends."""

    def do_GET(self) -> None:
        body = b"[1, 2, 3]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_server_that_is_not_ekuiper_is_named_not_a_hang(tmp_path: Path,
                                                          zips: dict[str, Release]) -> None:
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotEkuiper)
    threading.Thread(target=other.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{other.server_address[1]}"
        result, _ = run([url], zips["1.0"], ReleaseHistory(tmp_path / "r"))
        assert result.outcome == "refused"
        assert "is it eKuiper's REST API?" in result.plans[0].detail
    finally:
        other.shutdown()
        other.server_close()


def test_a_version_the_history_does_not_know_is_refused_unless_told(
        tmp_path: Path, zips: dict[str, Release]) -> None:
    history = ReleaseHistory(tmp_path / "releases")
    with fleet(tmp_path, 2) as servers:
        for s in servers:   # installed by hand, not through a rollout
            install_zip(RestClient(s.url), zips["1.0"].path, log=io.StringIO())
        urls = [s.url for s in servers]
        result, _ = run(urls, zips["2.0"], history)
        assert result.exit_code == 1 and "--previous ZIP" in result.message
        assert all(s.version_of(zips["1.0"].plugin) == "1.0" for s in servers)
        assert "whose zip the release history does not hold" in result.plans[0].reason
        # --previous brings the zip: a failure can now go back to it.
        servers[1].dies_on = {"2.0": 0.0}
        result, _ = run(urls, zips["2.0"], history, previous=zips["1.0"], parallel=2,
                        canary=0)
        assert result.exit_code == 3
        assert [s.version_of(zips["1.0"].plugin) for s in servers] == ["1.0", "1.0"]


def test_no_rollback_leaves_the_changed_servers_and_says_so(
        tmp_path: Path, zips: dict[str, Release]) -> None:
    history = ReleaseHistory(tmp_path / "releases")
    with fleet(tmp_path, 3) as servers:
        for s in servers:
            install_zip(RestClient(s.url), zips["1.0"].path, log=io.StringIO())
        servers[1].dies_on = {"2.0": 0.0}
        result, _ = run([s.url for s in servers], zips["2.0"], history, no_rollback=True,
                        parallel=1)
        assert result.exit_code == 4 and "nothing was rolled back" in result.message
        assert [s.version_of(zips["2.0"].plugin) for s in servers[:2]] == ["2.0", "2.0"]
        assert servers[2].version_of(zips["1.0"].plugin) == "1.0"


def test_a_stop_between_steps_says_where_each_server_stands(
        tmp_path: Path, zips: dict[str, Release]) -> None:
    history = ReleaseHistory(tmp_path / "releases")
    stop = threading.Event()
    with fleet(tmp_path, 4) as servers:
        on_v1(servers, zips["1.0"], history)
        # Ctrl-C sets this event; here a timer sets it while the canary is being watched.
        timer = threading.Timer(0.3, stop.set)
        timer.start()
        out = io.StringIO()
        result = rollout([Server(s.url) for s in servers], zips["2.0"], history,
                         Options(settle=1.0, observe=0.0), out=out, stop=stop)
        timer.cancel()
        assert result.exit_code == 130
        assert [p.state for p in result.plans] == ["interrupted"] + ["not started"] * 3
        assert servers[0].version_of(zips["2.0"].plugin) == "2.0"
        assert all(s.version_of(zips["1.0"].plugin) == "1.0" for s in servers[1:])
        assert "re-run the same command" in result.message
        # The canary was changed but never checked: a re-run changes and checks it again.
        servers[1].dies_on = {"2.0": 0.0}
        puts = sum(m == "PUT" for m, _, _ in servers[0].requests)
        again, _ = run([s.url for s in servers], zips["2.0"], history, parallel=4)
        assert [p.state for p in again.plans] == ["rolled back"] * 4
        # The canary is updated to the zip it ran and checked, and left on it: it ran this
        # zip before the rollout, so going back changes nothing there.
        assert sum(m == "PUT" for m, _, _ in servers[0].requests) == puts + 1
        assert servers[0].version_of(zips["2.0"].plugin) == "2.0"
        assert [s.version_of(zips["1.0"].plugin) for s in servers[1:]] == ["1.0"] * 3
        servers[1].dies_on = {}
        third, _ = run([s.url for s in servers], zips["2.0"], history, parallel=4)
        assert [p.state for p in third.plans] == ["skipped"] + ["checked"] * 3


def test_a_hundred_servers_ten_at_a_time_take_ten_waves_not_a_hundred_settles(
        tmp_path: Path, zips: dict[str, Release]) -> None:
    history = ReleaseHistory(tmp_path / "releases")
    settle = 0.5
    with fleet(tmp_path, 100) as servers:
        for s in servers[::25]:
            s.delay = 0.05   # a few slow servers: every answer of theirs waits
        started = time.monotonic()
        result, _ = run([s.url for s in servers], zips["1.0"], history, canary=0,
                        parallel=10, settle=settle)
        elapsed = time.monotonic() - started
        assert result.exit_code == 0, result.message
        assert [len(w) for w in result.waves] == [10] * 10
        assert all(s.version_of(zips["1.0"].plugin) == "1.0" for s in servers)
    # Ten waves each watch for a settle window; one server at a time would take 100.
    assert 10 * settle <= elapsed < 30 * settle, elapsed
