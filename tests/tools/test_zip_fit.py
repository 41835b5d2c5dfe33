"""``zip_fit``: a vendored zip's wheels against what a server runs (``install --check``).
The zips are made of real wheel names; the servers are a probe's facts (test_doctor runs
the probe against a real eKuiper)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from helpers.private_server import private_kuiperd  # noqa: F401 - a fixture

from benchmarks.kuiperd import PrivateKuiperd
from ekuiper_sdk.tools import doctor, zip_fit

BOARD = {"machine": "aarch64", "libc": "glibc 2.36", "python_path": "/usr/bin/python3",
         "py_python_version": "3.11.2", "py_module_pip": "ok 23", "ipc_writable": "yes",
         "data_writable": "yes", "py_lib_libatomic.so.1": "ok"}


def report(**facts: str) -> doctor.Report:
    r = doctor.Report("http://board:9081", {}, dict(BOARD, **facts))
    r.findings = doctor._findings(r)
    return r


def vendored(tmp_path: Path, *wheels: str) -> Path:
    path = tmp_path / "demo.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("demo.json", "{}")
        for wheel in wheels:
            zf.writestr(f"wheels/{wheel}", b"")
    return path


SLIM = ("pynng-0.9.0-cp312-cp312-manylinux_2_26_aarch64.manylinux_2_28_aarch64.whl",
        "pynng-0.9.0-cp312-cp312-manylinux_2_26_x86_64.manylinux_2_28_x86_64.whl",
        "cffi-2.1.1-cp312-cp312-manylinux2014_aarch64.manylinux_2_17_aarch64.whl",
        "pycparser-3.12-py3-none-any.whl", "ekuiper_sdk-0.1.0+s1-py3-none-any.whl")


def test_a_zip_for_312_is_refused_by_a_311_board_with_the_command_that_fits(
        tmp_path: Path) -> None:
    [problem] = zip_fit.unfit(vendored(tmp_path, *SLIM), report())
    assert "no wheel of cffi, pynng for CPython 3.11 on linux aarch64" in problem
    assert problem.endswith("--python-version 3.11 --platform aarch64 --glibc 2.36")


def test_a_zip_that_fits_is_let_through(tmp_path: Path) -> None:
    assert zip_fit.unfit(vendored(tmp_path, *SLIM), report(py_python_version="3.12.7")) == []


def test_musl_wheels_do_not_fit_glibc_and_abi3_fits_newer_pythons(tmp_path: Path) -> None:
    musl = vendored(tmp_path, "pynng-0.9.0-cp312-cp312-musllinux_1_2_aarch64.whl")
    assert zip_fit.unfit(musl, report(py_python_version="3.12.1"))
    assert zip_fit.unfit(musl, report(py_python_version="3.12.1", libc="musl 1.2.5")) == []
    abi3 = vendored(tmp_path, "cryptography-44.0.0-cp39-abi3-manylinux_2_28_aarch64.whl")
    assert zip_fit.unfit(abi3, report()) == []


def test_a_zip_without_wheels_needs_the_sdk_on_the_server(tmp_path: Path) -> None:
    [problem] = zip_fit.unfit(vendored(tmp_path), report())
    assert "has no wheels and the server's Python lacks pynng, msgpack, ekuiper_sdk" in problem
    assert zip_fit.unfit(vendored(tmp_path), report(py_module_pynng="ok 0.9",
                                                    py_module_msgpack="ok 1",
                                                    py_module_ekuiper_sdk="ok 0.1")) == []


def test_a_blocking_finding_refuses_any_zip(tmp_path: Path) -> None:
    problems = zip_fit.unfit(vendored(tmp_path, *SLIM), report(py_python_version="3.12.1",
                                                               ipc_writable="no"))
    assert len(problems) == 1 and "/tmp is not writable" in problems[0]


def test_install_check_refuses_before_sending_the_zip(
        private_kuiperd: PrivateKuiperd, tmp_path: Path) -> None:  # noqa: F811
    import io

    from ekuiper_sdk.tools.cli import main

    path = tmp_path / "h24fit.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("h24fit.json", '{"version": "1", "language": "python", '
                    '"executable": "main.py", "functions": ["h24fit_f"]}')
        zf.writestr("main.py", "")
        zf.writestr("wheels/pynng-0.9.0-cp38-cp38-manylinux_2_28_x86_64.whl", b"")
    out, err = io.StringIO(), io.StringIO()
    code = main(["install", str(path), "--check", "--server", private_kuiperd.url],
                out=out, err=err)
    assert code == 1
    line = err.getvalue().strip().splitlines()[-1]
    assert line.startswith("error: not installed: h24fit.zip has no wheel of pynng for CPython")
    assert private_kuiperd.run_dir is not None
    assert not (private_kuiperd.run_dir / "plugins" / "portable" / "h24fit").exists()
