"""``pack --vendor`` installs each plugin's wheels into its own folder: two plugins pinning
different versions of one package run side by side, and deleting one changes nothing else.

The launcher tests need no network; the side-by-side test downloads two versions of ``six``
and skips when PyPI cannot be reached.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from helpers.fake_ekuiper_rest import FakeEkuiper
from helpers.pack_helpers import new_plugin, require_pypi
from helpers.vendor_helpers import bare_venv_with_borrowed_pip, clean_env, local_options

from ekuiper_sdk.errors import PackagingError
from ekuiper_sdk.testing import PluginHost
from ekuiper_sdk.tools import pack as pack_mod
from ekuiper_sdk.tools import rest
from ekuiper_sdk.tools.launcher import LAUNCHER, PACKAGES_DIR, launcher_script


def test_launcher_runs_the_script_as_python_would_with_its_packages_next(
        tmp_path: Path) -> None:
    folder = tmp_path / "plugin"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "helper.py").write_text("WHERE = 'script folder'\n")
    (folder / "src" / "main.py").write_text(
        "import json, os, sys, helper, pinned\n"
        "print(json.dumps({'name': __name__, 'file': __file__, 'argv': sys.argv,\n"
        "                  'cwd': os.getcwd(), 'path': sys.path[:3], 'helper': helper.WHERE,\n"
        "                  'pinned': pinned.WHERE}))\n")
    packages = folder / PACKAGES_DIR
    (packages / "extra").mkdir(parents=True)
    (packages / "pinned.py").write_text("WHERE = 'own packages'\n")
    (packages / "extra.pth").write_text("extra\n")   # as some wheels install
    (folder / LAUNCHER).write_text(launcher_script("src/main.py"))
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "pinned.py").write_text("WHERE = 'interpreter'\n")
    proc = subprocess.run([sys.executable, "-u", LAUNCHER, '{"sendTimeout":1000}'], cwd=folder,
                          env=dict(os.environ, PYTHONPATH=str(shadow)), capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    main = str(folder / "src" / "main.py")
    assert seen["name"] == "__main__" and seen["file"] == main
    assert seen["argv"] == [main, '{"sendTimeout":1000}']
    assert seen["cwd"] == str(folder)
    assert seen["path"] == [str(folder / "src"), str(packages), str(packages / "extra")]
    assert (seen["helper"], seen["pinned"]) == ("script folder", "own packages")


def test_launcher_name_taken_is_refused(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    (plugin / LAUNCHER).write_text("")
    with pytest.raises(PackagingError, match="--shared-python"):
        pack_mod.pack(plugin, tmp_path / "x.zip", vendor=local_options())
    assert not (tmp_path / "x.zip").exists()


# ---------------------------------------------------------------------------
# With PyPI


def _pinned_plugin(tmp: Path, version: str) -> tuple[str, Path]:
    """A plugin whose function returns the version of six it imported."""
    plugin = new_plugin(tmp)
    (plugin / "requirements.txt").write_text(f"six=={version}\n")
    main = plugin / "main.py"
    main.write_text(main.read_text().replace(
        "return str(args[0]).upper()", "import six\n        return six.__version__"))
    assert "six.__version__" in main.read_text()
    out = tmp / f"{plugin.name}.zip"
    pack_mod.pack(plugin, out, vendor=local_options(), log=io.StringIO())
    return plugin.name, out


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")
            if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def two_pins(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Path]]:
    require_pypi()
    tmp = tmp_path_factory.mktemp("pins")
    return [_pinned_plugin(tmp, "1.16.0"), _pinned_plugin(tmp, "1.15.0")]


def test_two_pins_run_side_by_side_and_a_delete_leaves_the_rest(
        two_pins: list[tuple[str, Path]], tmp_path: Path) -> None:
    python, lend = bare_venv_with_borrowed_pip(tmp_path)
    site_packages = Path(subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        text=True).strip())
    base_before = _files(site_packages)
    # eKuiper passes its environment on to install.sh; the index is disabled, so the only
    # wheels are the zip's. The borrowed pip is visible to install.sh only.
    install_env = clean_env(EKUIPER_PYTHON=str(python), PYTHONPATH=str(lend))
    with FakeEkuiper(tmp_path / "ek", install_env=install_env) as ek:
        client = rest.RestClient(ek.url, timeout=120)
        for _, zip_path in two_pins:
            rest.install_zip(client, zip_path, log=io.StringIO())
        folders = {name: ek.plugins_dir / name for name, _ in two_pins}
        run_env = {k: v for k, v in clean_env().items() if k != "PYTHONPATH"}

        def six_version(name: str) -> Any:
            # Each run is a process of its own, closed before the next one takes the socket.
            with PluginHost(name, folders[name] / LAUNCHER, python=str(python),
                            env=run_env) as host:
                return host.function(f"{name}_upper").call("x")

        (first, _), (second, _) = two_pins
        assert six_version(first) == "1.16.0"
        assert six_version(second) == "1.15.0"
        for name in folders:
            manifest = json.loads((folders[name] / f"{name}.json").read_text())
            assert manifest["executable"] == LAUNCHER
        kept = _files(folders[second])
        client.delete(first)
        assert not folders[first].exists()
        assert _files(folders[second]) == kept
        assert six_version(second) == "1.15.0"
    assert _files(site_packages) == base_before


def test_shared_python_installs_into_the_interpreter(tmp_path: Path) -> None:
    require_pypi()
    plugin = new_plugin(tmp_path)
    out = tmp_path / "shared.zip"
    pack_mod.pack(plugin, out, vendor=local_options(shared_python=True), log=io.StringIO())
    with zipfile.ZipFile(out) as zf:
        assert LAUNCHER not in zf.namelist()
        assert json.loads(zf.read(f"{plugin.name}.json"))["executable"] == "main.py"
    python, lend = bare_venv_with_borrowed_pip(tmp_path)
    install_env = clean_env(EKUIPER_PYTHON=str(python), PYTHONPATH=str(lend))
    with FakeEkuiper(tmp_path / "ek", install_env=install_env) as ek:
        rest.install_zip(rest.RestClient(ek.url, timeout=120), out, log=io.StringIO())
        assert not (ek.plugins_dir / plugin.name / PACKAGES_DIR).exists()
    found = subprocess.run([str(python), "-c", "import ekuiper_sdk"], capture_output=True,
                           timeout=60, check=False)
    assert found.returncode == 0, found.stderr
