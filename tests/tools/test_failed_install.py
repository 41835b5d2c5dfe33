"""``failed_install``: a failed install's one-line reason and the clean-up of what eKuiper
leaves, against a private real eKuiper (``--kuiperd``), with a wheel whose native module
needs a library the server's system lacks."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from helpers.pack_helpers import new_plugin
from helpers.private_server import private_kuiperd  # noqa: F401 - a fixture
from helpers.vendor_helpers import wheel_with_native_module

from benchmarks.kuiperd import PrivateKuiperd
from ekuiper_sdk.errors import RestError
from ekuiper_sdk.tools import manifest
from ekuiper_sdk.tools import vendor as vendoring
from ekuiper_sdk.tools.archive import ZipEntry, plugin_entries, zip_bytes
from ekuiper_sdk.tools.failed_install import install_cleanly, kind_files
from ekuiper_sdk.tools.rest import RestClient


def broken_zip(tmp_path: Path) -> tuple[str, Path]:
    """An init plugin whose wheels/ hold only a wheel that cannot load on this system."""
    plugin = new_plugin(tmp_path, f"h24f{tmp_path.name[-6:].replace('-', '_')}")
    m = manifest.Manifest.from_dict(json.loads(next(plugin.glob("*.json")).read_text()),
                                    plugin.name)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = wheel_with_native_module(wheels, "h24gone")
    entries = plugin_entries(plugin, m) + [
        ZipEntry(f"wheels/{wheel.name}", wheel.read_bytes()),
        ZipEntry("wheels/requirements.txt", b"h24native\n"),
        ZipEntry("install.sh", vendoring.install_script(m).encode(), 0o755)]
    out = tmp_path / f"{plugin.name}.zip"
    out.write_bytes(zip_bytes(entries))
    return plugin.name, out


def test_kind_files_are_the_ones_eKuiper_copies_to_etc(tmp_path: Path) -> None:
    name, path = broken_zip(tmp_path)
    files = kind_files(path)
    assert files and all(f.split("/")[0] in ("sources", "sinks", "functions") for f in files)
    assert set(files) <= set(zipfile.ZipFile(path).namelist())


def test_a_failed_install_says_why_in_one_line_and_leaves_nothing(
        private_kuiperd: PrivateKuiperd, tmp_path: Path) -> None:  # noqa: F811
    name, path = broken_zip(tmp_path)
    client = RestClient(private_kuiperd.url)
    with pytest.raises(RestError) as info:
        install_cleanly(client, path, via="upload", log=io.StringIO())
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("install.sh failed on the server: h24native cannot load on ")
    assert "libh24gone.so.1" in text
    assert text.endswith("what the failed install left on the server is removed")
    run = private_kuiperd.run_dir
    assert run is not None
    assert not (run / "plugins" / "portable" / name).exists()
    left = [f for f in kind_files(path) if (run / "etc" / f).exists()]
    assert left == [], f"eKuiper's etc/ still holds {left}"
    assert not list((run / "data" / "uploads").glob(f"{name}*"))
