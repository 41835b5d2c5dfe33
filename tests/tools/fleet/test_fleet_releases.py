"""The release history: zips kept by what they are, an append-only log, lookups."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.fleet_runs import versions

from ekuiper_sdk.errors import RestError
from ekuiper_sdk.tools.fleet.releases import Release, ReleaseHistory, default_folder


@pytest.fixture(scope="module")
def zips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Release]:
    return versions(tmp_path_factory.mktemp("release-zips"), "1.0", "2.0")


def test_the_last_entry_is_what_the_server_runs(tmp_path: Path,
                                                zips: dict[str, Release]) -> None:
    history = ReleaseHistory(tmp_path / "h")
    plugin = zips["1.0"].plugin
    history.record("http://a:1", zips["1.0"], plugin, "installed")
    history.record("http://a:1", zips["2.0"], plugin, "updated")
    history.record("http://b:1", zips["1.0"], plugin, "installed")
    last = history.last("http://a:1", plugin)
    assert last is not None and (last.version, last.sha256) == ("2.0", zips["2.0"].sha256)
    stored = history.folder / last.zip
    assert stored.read_bytes() == zips["2.0"].path.read_bytes()
    assert stored.name.startswith("2.0-")
    history.record("http://a:1", None, plugin, "deleted")
    assert history.last("http://a:1", plugin).absent  # type: ignore[union-attr]
    # Appended, never rewritten: four lines for four changes.
    assert len(history.log_path.read_text().splitlines()) == 4


def test_find_prefers_the_servers_own_zip_then_any_of_that_version(
        tmp_path: Path, zips: dict[str, Release]) -> None:
    history = ReleaseHistory(tmp_path / "h")
    plugin = zips["1.0"].plugin
    history.record("http://b:1", zips["1.0"], plugin, "installed")
    found = history.find("http://a:1", plugin, "1.0")
    assert found is not None and found.sha256 == zips["1.0"].sha256
    assert history.find("http://a:1", plugin, "0.9") is None


def test_a_broken_log_line_is_named(tmp_path: Path) -> None:
    history = ReleaseHistory(tmp_path / "h")
    history.folder.mkdir()
    history.log_path.write_text('{"server": "x"}\n<<<<<<< HEAD\n')
    with pytest.raises(RestError, match=r"log.jsonl:1 is not a release entry"):
        history.last("x", "p")


def test_the_default_folder_is_under_the_users_cache(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_folder() == tmp_path / "ekuiper-sdk" / "releases"
