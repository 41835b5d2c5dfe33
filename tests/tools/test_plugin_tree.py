"""What ``pack`` ships of a plugin folder: links, ignore file, virtualenvs, secrets."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers.pack_helpers import new_plugin

from ekuiper_sdk.errors import PackagingError
from ekuiper_sdk.tools.ignore import IgnoreRules
from ekuiper_sdk.tools.pack import pack


def names(zip_path: Path) -> list[str]:
    return zipfile.ZipFile(zip_path).namelist()


def test_a_link_out_of_the_folder_is_an_error_naming_it_and_nothing_is_written(
        tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    outside = tmp_path / "shadow"
    outside.write_text("root:secret-hash:19000::::::\n")
    (plugin / "shadow_link").symlink_to(outside)
    out = tmp_path / "p.zip"
    with pytest.raises(PackagingError) as info:
        pack(plugin, out, check_code=False)
    text = str(info.value)
    assert f"{plugin / 'shadow_link'}: is a symbolic link out of the plugin folder" in text
    assert "secret-hash" not in text
    assert not out.exists()


def test_a_link_inside_is_packed_as_the_file_it_points_to(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    (plugin / "lib").mkdir()
    (plugin / "lib" / "real.py").write_text("X = 1\n")
    (plugin / "alias.py").symlink_to("lib/real.py")
    (plugin / "lib" / "loop").symlink_to("..")  # back to the root: not walked again
    out = pack(plugin, tmp_path / "p.zip", check_code=False).zip_path
    assert out is not None
    zf = zipfile.ZipFile(out)
    assert zf.read("alias.py") == zf.read("lib/real.py") == b"X = 1\n"
    assert not [n for n in zf.namelist() if "loop" in n]
    assert zf.getinfo("alias.py").external_attr >> 16 & 0o777 == 0o644


def test_a_broken_link_is_an_error_naming_it(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    (plugin / "gone.py").symlink_to("nowhere.py")
    with pytest.raises(PackagingError, match="gone.py: is a symbolic link to nowhere.py, "
                       "which does not exist"):
        pack(plugin, tmp_path / "p.zip", check_code=False)


def test_the_ignore_file_virtualenvs_and_vcs_are_left_out_and_secrets_warned(
        tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    (plugin / "local.env").write_text("DB_PASSWORD=hunter2\n")
    (plugin / "deploy_key.pem").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (plugin / "credentials.yaml").write_text("token: abc\n")
    (plugin / "notes.txt").write_text("-----BEGIN RSA PRIVATE KEY-----\nMII\n")
    (plugin / "secret_store.py").write_text("")  # code: not flagged by its name
    (plugin / "scratch").mkdir()
    (plugin / "scratch" / "big.bin").write_bytes(b"x")
    (plugin / "data").mkdir()
    (plugin / "data" / "keep.csv").write_text("a\n")
    (plugin / "data" / "drop.csv").write_text("b\n")
    (plugin / ".ekuiperignore").write_text("# local things\nscratch/\n/data/*.csv\n"
                                           "!/data/keep.csv\ncredentials.yaml\n")
    (plugin / "CVS").mkdir()
    (plugin / "CVS" / "Entries").write_text("")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(plugin / "env")],
                   check=True)
    result = pack(plugin, tmp_path / "p.zip", check_code=False)
    assert result.zip_path is not None
    packed = names(result.zip_path)
    assert "data/keep.csv" in packed and "secret_store.py" in packed
    for left in ("data/drop.csv", "scratch/big.bin", "credentials.yaml", ".ekuiperignore"):
        assert left not in packed
    assert not [n for n in packed if n.startswith(("env/", "CVS/"))]
    warned = sorted(Path(w.path).name for w in result.warnings if "looks like a secret"
                    in w.message)
    assert warned == ["deploy_key.pem", "local.env", "notes.txt"]
    assert all("hunter2" not in str(w) for w in result.warnings)


@pytest.mark.parametrize(("pattern", "path", "is_dir", "ignored"), [
    ("*.log", "a/b/c.log", False, True),
    ("/top.txt", "sub/top.txt", False, False),
    ("build/", "build", False, False),
    ("build/", "x/build", True, True),
    ("a/**/b", "a/b", False, True),
    ("a/**/b", "a/x/y/b", False, True),
    ("**/cache", "deep/er/cache", True, True),
    ("logs/**", "logs/x/y", False, True),
    ("[!a]bc", "xbc", False, True),
    ("[!a]bc", "abc", False, False),
    ("\\#hash", "#hash", False, True),
    ("trailing   ", "trailing", False, True),
])
def test_gitignore_patterns(pattern: str, path: str, is_dir: bool, ignored: bool) -> None:
    assert IgnoreRules.parse([pattern]).ignored(path, is_dir) is ignored


def test_later_lines_win() -> None:
    rules = IgnoreRules.parse(["*.csv", "!keep.csv", "# comment", "", "keep.csv"])
    assert rules.ignored("keep.csv", False)
    assert not IgnoreRules.parse(["*.csv", "!keep.csv"]).ignored("keep.csv", False)
