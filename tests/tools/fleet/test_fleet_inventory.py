"""The fleet file in each of its forms, and the one-line errors for a bad one."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest

from ekuiper_sdk.tools.fleet import inventory
from ekuiper_sdk.tools.fleet.inventory import FleetFileError, parse_fleet, read_fleet


def test_plain_lines_with_comments_and_blank_lines(tmp_path: Path) -> None:
    f = tmp_path / "fleet.txt"
    f.write_text("# gateways\n\n10.0.0.5:9081\nhttp://10.0.0.6:9081/   # the old one\n")
    servers = read_fleet(f, default_token="Bearer t")
    assert [(s.url, s.token) for s in servers] == [("http://10.0.0.5:9081", "Bearer t"),
                                                   ("http://10.0.0.6:9081", "Bearer t")]


def test_json_entries_with_names_groups_and_tokens_from_the_environment(
        tmp_path: Path) -> None:
    text = ('{"servers": [{"url": "10.0.0.5:9081", "name": "gw-5", "groups": ["canary"]},'
            ' {"url": "10.0.0.6:9081", "token_env": "GW6_TOKEN", "groups": "north"},'
            ' "10.0.0.7:9081"]}')
    servers = parse_fleet(Path("f.json"), text, env={"GW6_TOKEN": "Bearer six"},
                          default_token="Bearer all")
    assert [s.label for s in servers] == ["gw-5", "10.0.0.6:9081", "10.0.0.7:9081"]
    assert [s.token for s in servers] == ["Bearer all", "Bearer six", "Bearer all"]
    assert servers[1].groups == ("north",)


def test_yaml_and_groups_select_servers(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    f = tmp_path / "fleet.yaml"
    f.write_text("servers:\n  - url: http://10.0.0.5:9081\n    groups: [canary]\n"
                 "  - url: http://10.0.0.6:9081\n    groups: [north]\n")
    assert [s.url for s in read_fleet(f, groups=["north"])] == ["http://10.0.0.6:9081"]
    with pytest.raises(FleetFileError, match="no server is in group south"):
        read_fleet(f, groups=["south"])


def test_toml_when_a_reader_is_installed(tmp_path: Path) -> None:
    if not any(importlib.util.find_spec(m) for m in ("tomllib", "tomli")):
        pytest.skip("TOML needs Python 3.11 or tomli")
    f = tmp_path / "fleet.toml"
    f.write_text('[[servers]]\nurl = "10.0.0.5:9081"\nname = "gw-5"\n\n'
                 '[[servers]]\nurl = "10.0.0.6:9081"\n')
    assert [s.label for s in read_fleet(f)] == ["gw-5", "10.0.0.6:9081"]


def test_toml_without_a_reader_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def without_toml(name: str) -> object:
        if name in ("tomllib", "tomli"):
            raise ImportError(name)
        return real(name)

    monkeypatch.setattr(inventory.importlib, "import_module", without_toml)
    with pytest.raises(FleetFileError, match="needs Python 3.11 or the tomli package") as info:
        parse_fleet(Path("f.toml"), 'servers = []', env={})
    assert "pip install tomli" in info.value.hint


@pytest.mark.parametrize("name, text, message", [
    ("f.txt", "", "lists no server"),
    ("f.txt", "a:1 b:2\n", "f.txt:1: 'a:1 b:2' is more than one URL"),
    ("f.txt", "ftp://x\n", "is not an http(s) URL"),
    ("f.txt", "10.0.0.5:9081\nhttp://10.0.0.5:9081\n", "is listed twice"),
    ("f.json", '{"servers": [{"name": "x"}]}', "server 1: an entry needs a url"),
    ("f.json", '{"servers": [{"url": "h:1", "tokn": "x"}]}', "unknown key(s) tokn"),
    ("f.json", '{"servers": [{"url": "h:1", "token_env": "NOPE_I25"}]}',
     "token_env NOPE_I25 is not set"),
    ("f.json", '{"hosts": []}', "no list of servers"),
    ("f.json", "{", "not JSON"),
])
def test_a_bad_fleet_file_is_one_line_that_names_the_place(name: str, text: str,
                                                            message: str) -> None:
    with pytest.raises(FleetFileError) as info:
        parse_fleet(Path(name), text, env={})
    assert message in str(info.value)
    assert "\n" not in str(info.value) and info.value.hint


def test_a_missing_fleet_file_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(FleetFileError, match=r"--fleet .*nope.txt: No such file"):
        read_fleet(tmp_path / "nope.txt")
