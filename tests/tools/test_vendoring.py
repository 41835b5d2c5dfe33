"""``pack --vendor``: wheel resolution, the SDK wheel, and install.sh in a fresh environment.

The tests that download wheels skip when PyPI cannot be reached; they vendor for this
machine's interpreter so that the zip can really be installed here.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import re
import subprocess
import venv
import zipfile
from pathlib import Path

import pytest
from helpers import ekuiper_install_rules as rules
from helpers.pack_helpers import builtin_host, new_plugin, require_pypi
from helpers.vendor_helpers import (
    PY,
    bare_venv_with_borrowed_pip,
    clean_env,
    local_options,
    wheel_with_native_module,
)

from ekuiper_sdk.errors import PackagingError, VendorError
from ekuiper_sdk.tools import manifest
from ekuiper_sdk.tools import pack as pack_mod
from ekuiper_sdk.tools import vendor as vendoring
from ekuiper_sdk.tools.vendor import VendorOptions

# ---------------------------------------------------------------------------
# No network


def test_default_targets_are_the_slim_python_image() -> None:
    targets = VendorOptions().targets()
    assert [t.python_version for t in targets] == ["3.12", "3.12"]
    assert targets[0].abi == "cp312"
    assert "manylinux_2_36_x86_64" in targets[0].platforms
    assert "manylinux_2_17_aarch64" in targets[1].platforms
    assert "manylinux_2_37_aarch64" not in targets[1].platforms


def test_raw_platform_tags_pass_through() -> None:
    target = vendoring.platform_target("3.12", "musllinux_1_2_x86_64")
    assert target.platforms == ("musllinux_1_2_x86_64",)
    with pytest.raises(VendorError, match="--platform"):
        vendoring.platform_target("3.12", "win 64")
    with pytest.raises(VendorError, match="--glibc"):
        vendoring.platform_target("3.12", "x86_64", "2.5")


def test_requirements_refuse_options(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("six  # ok\n--index-url https://example.invalid/simple\n")
    with pytest.raises(VendorError) as info:
        vendoring.read_requirements(req)
    assert f"{req}:2" in str(info.value)


def test_sdk_wheel_is_deterministic_and_complete() -> None:
    name, data = vendoring.build_sdk_wheel()
    assert vendoring.build_sdk_wheel()[1] == data
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        assert "ekuiper_sdk/__init__.py" in names and "ekuiper_sdk/plugin.json" in names
        assert not any("__pycache__" in n for n in names)
        info = name[:-len("-py3-none-any.whl")] + ".dist-info"
        record = zf.read(f"{info}/RECORD").decode()
        for line in record.splitlines():
            path, digest, _ = line.split(",")
            if digest:
                raw = hashlib.sha256(zf.read(path)).digest()
                import base64
                assert digest == "sha256=" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        metadata = zf.read(f"{info}/METADATA").decode()
        assert "Requires-Dist: pynng" in metadata
        # The content's hash is the local version label: a changed SDK is a new version
        # to pip, which keeps an installed one of the same version.
        version = name.split("-")[1]
        assert re.fullmatch(r"[0-9.]+\+s[0-9a-f]{12}", version), version
        assert f"Version: {version}\n" in metadata


def test_install_sh_refuses_without_pip(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    m = manifest.Manifest.from_dict(json.loads(next(plugin.glob("*.json")).read_text()),
                                     plugin.name)
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "requirements.txt").write_text("six\n")
    script = tmp_path / "install.sh"
    script.write_text(vendoring.install_script(m))
    bare = tmp_path / "bare"
    venv.EnvBuilder(with_pip=False).create(bare)
    proc = subprocess.run(["/bin/sh", str(script)], capture_output=True, text=True,
                          env=clean_env(EKUIPER_PYTHON=str(bare / "bin" / "python")), check=False)
    assert proc.returncode != 0
    [line] = proc.stderr.strip().splitlines()
    assert "pip is not available" in line and "portable.pythonBin" in line
    assert "KUIPER__PORTABLE__PYTHONBIN" in line and "ensurepip" not in line


def test_vendor_refuses_a_go_plugin_and_an_own_install_sh(tmp_path: Path) -> None:
    plugin = new_plugin(tmp_path)
    (plugin / "install.sh").write_text("echo hi\n")
    with pytest.raises(PackagingError, match="install.sh"):
        pack_mod.pack(plugin, tmp_path / "x.zip", vendor=local_options())
    assert not (tmp_path / "x.zip").exists()
    (plugin / "install.sh").unlink()
    manifest_path = next(plugin.glob("*.json"))
    manifest_path.write_text(manifest_path.read_text().replace('"python"', '"go"'))
    with pytest.raises(PackagingError, match="language is 'go'"):
        pack_mod.pack(plugin, tmp_path / "x.zip", vendor=local_options())
    assert not (tmp_path / "x.zip").exists()


# ---------------------------------------------------------------------------
# With PyPI


@pytest.fixture(scope="module")
def vendored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A plugin needing a pure-python requirement, packed with wheels for this machine that
    install into the interpreter."""
    require_pypi()
    tmp = tmp_path_factory.mktemp("vendored")
    plugin = new_plugin(tmp)
    (plugin / "requirements.txt").write_text("six>=1.16\n")
    main = plugin / "main.py"
    # The function now uses the vendored requirement (imported when called, so that this
    # environment, which lacks it, can still load the plugin to list its symbols).
    main.write_text(main.read_text().replace(
        "return str(args[0]).upper()",
        "import six\n        return six.ensure_str(str(args[0])).upper()"))
    assert "import six" in main.read_text()
    out = tmp / f"{plugin.name}.zip"
    log = io.StringIO()
    # Into the interpreter (--shared-python): test_isolation covers the plugin's own folder.
    pack_mod.pack(plugin, out, vendor=local_options(shared_python=True), log=log)
    assert "Saved" in log.getvalue() or "already downloaded" in log.getvalue() or \
        "six" in log.getvalue()
    return plugin, out


def test_vendored_zip_passes_the_install_rules(vendored: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    plugin, out = vendored
    assert rules.check(out, plugin.name, tmp_path / "ek") == []
    names = zipfile.ZipFile(out).namelist()
    assert "install.sh" in names and "wheels/requirements.txt" in names
    for wanted in ("six-", "pynng-", "cffi-", "ekuiper_sdk-"):
        assert any(n.startswith("wheels/" + wanted) for n in names), wanted
    lock = zipfile.ZipFile(out).read("wheels/requirements.txt").decode().split()
    assert lock[0] == "six>=1.16" and lock[-1].startswith("ekuiper-sdk==")


@pytest.fixture(scope="module")
def installed(vendored: tuple[Path, Path],
              tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """The vendored zip unpacked as eKuiper would, and install.sh run twice into a fresh
    venv with no index and no other wheel folder: (plugin folder, python, environment)."""
    plugin, out = vendored
    tmp = tmp_path_factory.mktemp("installed")
    root = tmp / "ek"
    rules.install(out, plugin.name, root)
    folder = root / "plugins" / "portable" / plugin.name
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    env = clean_env(EKUIPER_PYTHON=str(python))
    for attempt in (1, 2):  # a second run must be harmless
        proc = subprocess.run(["/bin/sh", str(folder / "install.sh")], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, (attempt, proc.stdout, proc.stderr)
        assert "dependencies installed" in proc.stdout
    return folder, python, env


def test_vendored_zip_installs_offline_into_a_fresh_venv(
        installed: tuple[Path, Path, dict[str, str]]) -> None:
    folder, python, env = installed
    imported = subprocess.run([str(python), "-c", "import six, pynng, ekuiper_sdk"], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
    assert imported.returncode == 0, imported.stderr
    described = subprocess.run([str(python), "main.py"], cwd=folder, capture_output=True,
                               text=True, env=dict(env, EKUIPER_SDK_LIST_SYMBOLS="1"), timeout=60,
                               check=False)
    assert described.returncode == 0, described.stderr
    assert json.loads(described.stdout)["name"] == folder.name


def test_vendored_plugin_runs_under_the_builtin_host(
        installed: tuple[Path, Path, dict[str, str]]) -> None:
    builtin_host()
    folder, python, env = installed
    # The venv's own ekuiper_sdk (from the vendored wheel) hosts the plugin, so the run uses
    # only what the zip brought.
    script = ("import io, sys; from ekuiper_sdk.testing import run_pipeline; buf = io.StringIO()"
              f"; run_pipeline({str(folder)!r}, count=2, out=buf, timeout=30.0)"
              "; print(buf.getvalue())")
    proc = subprocess.run([str(python), "-c", script], env=env, capture_output=True, text=True,
                          timeout=90, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()


def test_install_sh_names_a_missing_wheel(vendored: tuple[Path, Path], tmp_path: Path) -> None:
    plugin, out = vendored
    root = tmp_path / "ek"
    rules.install(out, plugin.name, root)
    folder = root / "plugins" / "portable" / plugin.name
    for wheel in (folder / "wheels").glob("six-*.whl"):
        wheel.unlink()
    python = bare_venv_with_borrowed_pip(tmp_path)
    proc = subprocess.run(["/bin/sh", str(folder / "install.sh")], cwd=folder, timeout=120,
                          env=clean_env(EKUIPER_PYTHON=str(python[0]), PYTHONPATH=str(python[1])),
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("install.sh: a wheel of six") and "--platform" in last


def test_requirement_without_a_wheel_is_named_before_writing(tmp_path: Path) -> None:
    require_pypi()
    plugin = new_plugin(tmp_path)
    (plugin / "requirements.txt").write_text("six==0.0.0.999\n")
    out = tmp_path / "never.zip"
    with pytest.raises(VendorError) as info:
        pack_mod.pack(plugin, out, vendor=local_options(), log=io.StringIO())
    [line] = str(info.value).splitlines()
    assert "'six==0.0.0.999' has no wheel for CPython" in line
    assert not out.exists()


def test_install_sh_reads_as_written() -> None:
    """The script keeps the shell's escapes and continuations (it once lost them)."""
    from ekuiper_sdk.tools.vendor import INSTALL_SH

    assert "printf 'install.sh: %s\\n' \"$*\" >&2" in INSTALL_SH
    continued = [line for line in INSTALL_SH.splitlines() if line.endswith(" \\")]
    assert len(continued) >= 4, continued
    assert 'py="${EKUIPER_PYTHON:-${KUIPER__PORTABLE__PYTHONBIN:-}}"' in INSTALL_SH


def test_install_sh_names_a_system_library_a_wheel_needs(tmp_path: Path) -> None:
    """A native module that cannot load fails install.sh at once, in one line naming the
    package and the library, and leaves no half-filled package folder behind."""
    plugin = new_plugin(tmp_path)
    m = manifest.Manifest.from_dict(json.loads(next(plugin.glob("*.json")).read_text()),
                                     plugin.name)
    folder = tmp_path / "plugin"
    (folder / "wheels").mkdir(parents=True)
    wheel_with_native_module(folder / "wheels", "h24gone")
    (folder / "wheels" / "requirements.txt").write_text("h24native\n")
    (folder / "install.sh").write_text(vendoring.install_script(m))
    python, lend = bare_venv_with_borrowed_pip(tmp_path)
    proc = subprocess.run(["/bin/sh", str(folder / "install.sh")], cwd=folder, timeout=120,
                          env=clean_env(EKUIPER_PYTHON=str(python), PYTHONPATH=str(lend)),
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("install.sh: h24native cannot load on CPython "), line
    assert "it needs libh24gone.so.1, which this system lacks" in line
    assert "provides libh24gone.so.1" in line and line.endswith("install the plugin again")
    assert sorted(p.name for p in folder.iterdir()) == ["install.sh", "wheels"]


def test_install_sh_gives_the_one_command_that_packs_for_this_machine(
        tmp_path: Path) -> None:
    """A zip without a wheel for this Python names the exact `pack` command that has one."""
    plugin = new_plugin(tmp_path)
    m = manifest.Manifest.from_dict(json.loads(next(plugin.glob("*.json")).read_text()),
                                     plugin.name)
    folder = tmp_path / "plugin"
    (folder / "wheels").mkdir(parents=True)
    (folder / "wheels" / "requirements.txt").write_text("h24absent\n")
    (folder / "install.sh").write_text(vendoring.install_script(m))
    python, lend = bare_venv_with_borrowed_pip(tmp_path)
    proc = subprocess.run(["/bin/sh", str(folder / "install.sh")], cwd=folder, timeout=120,
                          env=clean_env(EKUIPER_PYTHON=str(python), PYTHONPATH=str(lend)),
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    machine = platform.machine()
    glibc = platform.libc_ver()[1]
    assert last.endswith(f"pack again for this machine: ekuiper-plugin pack <plugin folder> "
                         f"--vendor --python-version {PY} --platform {machine} --glibc {glibc}"
                         ), last


def test_armv7_accepts_wheels_built_for_the_device() -> None:
    target = vendoring.platform_target("3.11", "armv7", "2.36")
    assert target.platforms[0] == "manylinux_2_36_armv7l"
    assert target.platforms[-1] == "linux_armv7l"


def test_msgpack_has_a_pure_python_form_where_no_wheel_fits(tmp_path: Path) -> None:
    require_pypi()
    log = io.StringIO()
    assert vendoring.pure_python_wheel("msgpack", tmp_path, (), log), log.getvalue()
    [wheel] = tmp_path.glob("msgpack-*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")
    assert not [n for n in zipfile.ZipFile(wheel).namelist() if ".so" in n]
    assert not vendoring.pure_python_wheel("pynng", tmp_path, (), log)


def test_armv7_without_a_pynng_wheel_says_how_to_get_one(tmp_path: Path) -> None:
    require_pypi()
    with pytest.raises(VendorError) as info:
        vendoring.download_wheels(["pynng>=0.9,<0.10"],
                                  [vendoring.platform_target("3.11", "armv7")],
                                  tmp_path / "wheels", log=io.StringIO())
    [line] = str(info.value).splitlines()
    assert "has no wheel for CPython 3.11 on linux armv7l" in line
    assert "--find-links" in line


def test_install_sh_uses_the_python_kuiper_yaml_names(tmp_path: Path) -> None:
    """portable.pythonBin set only in etc/kuiper.yaml (as on a board) is the Python that
    install.sh installs with, not whichever `python` is on PATH."""
    plugin = new_plugin(tmp_path)
    m = manifest.Manifest.from_dict(json.loads(next(plugin.glob("*.json")).read_text()),
                                    plugin.name)
    root = tmp_path / "kuiper"
    folder = root / "plugins" / "portable" / plugin.name
    (folder / "wheels").mkdir(parents=True)
    (folder / "wheels" / "requirements.txt").write_text("h24absent\n")
    (folder / "install.sh").write_text(vendoring.install_script(m))
    bare = tmp_path / "bare"
    venv.EnvBuilder(with_pip=False).create(bare)
    (root / "etc").mkdir()
    (root / "etc" / "kuiper.yaml").write_text(
        f"portable:\n  # the board's own\n  pythonBin: \"{bare / 'bin' / 'python'}\"  # set\n")
    proc = subprocess.run(["/bin/sh", str(folder / "install.sh")], cwd=folder, timeout=60,
                          env=clean_env(), capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert f"pip is not available for {bare / 'bin' / 'python'}," in line
