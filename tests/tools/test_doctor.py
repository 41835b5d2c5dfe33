"""``doctor``: what a server offers a Python plugin. The reading of a probe's facts runs
everywhere; the probe itself against a private real eKuiper (``--kuiperd``)."""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys

import pytest
from helpers.private_server import private_kuiperd  # noqa: F401 - a fixture

from benchmarks.kuiperd import PrivateKuiperd
from ekuiper_sdk.errors import RestError
from ekuiper_sdk.tools import doctor
from ekuiper_sdk.tools.cli import main
from ekuiper_sdk.tools.rest import RestClient
from ekuiper_sdk.tools.vendor import VendorOptions

ARM_BOARD = {"machine": "aarch64", "libc": "glibc 2.36", "uid": "0", "base": "/kuiper",
             "python_bin": "python3", "python_source": "portable.pythonBin in etc/kuiper.yaml",
             "python_path": "/usr/bin/python3", "py_python_version": "3.11.2",
             "py_module_pip": "ok 23.0.1", "py_module_pynng": "missing No module",
             "py_module_msgpack": "missing No module", "py_module_ekuiper_sdk": "missing",
             "py_module_ekuiper": "missing", "py_lib_libatomic.so.1": "missing",
             "ipc_writable": "yes", "data_writable": "yes"}


def report(**facts: str) -> doctor.Report:
    r = doctor.Report("http://board:9081", {"version": "2.4.0"}, dict(ARM_BOARD, **facts))
    r.findings = doctor._findings(r)
    return r


def test_a_board_without_libatomic_gets_the_package_to_install() -> None:
    r = report()
    assert not r.ok
    [sdk, atomic] = r.findings
    assert not sdk.blocking and "--python-version 3.11 --platform aarch64 --glibc 2.36" in sdk.fix
    assert atomic.blocking and "apt-get install libatomic1" in atomic.fix
    screen = doctor.render(r)
    assert "missing: libatomic.so.1" in screen and "CPython" not in screen.splitlines()[0]


def test_pack_for_a_server_takes_its_python_architecture_and_libc() -> None:
    options = doctor.vendor_options_for(report(), VendorOptions(shared_python=True))
    assert (options.python_version, options.platforms, options.glibc,
            options.shared_python) == ("3.11", ("aarch64",), "2.36", True)
    alpine = doctor.vendor_options_for(report(libc="musl 1.2.5", machine="x86_64"))
    assert alpine.platforms == ("musl-x86_64",)
    assert alpine.targets()[0].platforms[0] == "musllinux_1_2_x86_64"


def test_a_server_without_python_is_named_with_the_setting_that_chooses_it() -> None:
    facts = {k: v for k, v in ARM_BOARD.items() if not k.startswith(("py", "python_path"))}
    r = doctor.Report("http://board:9081", {}, facts)
    r.findings = doctor._findings(r)
    assert "portable.pythonBin" in r.findings[0].fix
    assert "KUIPER__PORTABLE__PYTHONBIN" in r.findings[0].fix
    with pytest.raises(RestError, match="has no Python that runs"):
        doctor.vendor_options_for(r)


def test_read_only_tmp_and_data_are_blocking() -> None:
    r = report(ipc_writable="no", data_writable="no")
    whats = [f.what for f in r.findings if f.blocking]
    assert any("/tmp is not writable" in w for w in whats)
    assert any("/kuiper/data is not writable by uid 0" in w for w in whats)


def test_target_names_an_image_flavour() -> None:
    ns = argparse.Namespace(target="slim-python", for_server=None)
    options = doctor.retarget(ns, VendorOptions(python_version="3.9"), io.StringIO())
    assert (options.python_version, options.platforms) == ("3.12", ("x86_64", "aarch64"))
    with pytest.raises(RestError, match="--target and --for"):
        doctor.retarget(argparse.Namespace(target="slim-python", for_server="http://x"),
                        VendorOptions(), io.StringIO())


def test_the_probe_reads_the_server_and_leaves_nothing(
        private_kuiperd: PrivateKuiperd) -> None:  # noqa: F811
    client = RestClient(private_kuiperd.url)
    r = doctor.probe(client, log=io.StringIO())
    f = r.facts
    # The server's Python is a venv of this interpreter (private_kuiperd).
    assert r.python_version == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert f["python_source"] == "KUIPER__PORTABLE__PYTHONBIN"
    assert r.module("pip")[0] and not r.module("pynng")[0] and not r.module("ekuiper_sdk")[0]
    assert r.machine == platform.machine()
    assert r.libc == ("glibc", platform.libc_ver()[1])
    assert f["ipc_writable"] == "yes" and f["data_writable"] == "yes"
    assert r.ok, r.findings
    assert private_kuiperd.run_dir is not None
    assert list((private_kuiperd.run_dir / "plugins" / "portable").iterdir()) == []
    assert client.list_plugins() == []


def test_doctor_json_and_exit_status(private_kuiperd: PrivateKuiperd  # noqa: F811
                                     ) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["doctor", "--server", private_kuiperd.url, "--json"], out=out, err=err)
    data = json.loads(out.getvalue())
    assert code == 0 and data["ok"] is True
    assert data["pack"].endswith(f"--platform {platform.machine()} --glibc "
                                 f"{platform.libc_ver()[1]}")
    assert data["ekuiper"]["version"]


def test_pack_for_a_real_server_packs_for_its_python(private_kuiperd: PrivateKuiperd  # noqa: F811
                                                     ) -> None:
    log = io.StringIO()
    ns = argparse.Namespace(target=None, for_server=private_kuiperd.url, token=None)
    options = doctor.retarget(ns, VendorOptions(), log)
    assert options.python_version == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert options.platforms == (platform.machine(),)
    assert options.glibc == platform.libc_ver()[1]
    assert f"packing for {private_kuiperd.url}: CPython" in log.getvalue()
