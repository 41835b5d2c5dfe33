"""``python -m benchmarks`` through a real eKuiper, on both SDKs, with the shortest windows.

These need a server, which CI does not have: the URL one runs when ``--ekuiper-url URL`` or
``EKUIPER_URL`` names a running eKuiper on this machine (its Python must import the
official ``ekuiper``; ``--ekuiper-python X.Y`` gives its version), the private one when
``--kuiperd PATH`` or ``EKUIPER_KUIPERD`` names a kuiperd binary. Otherwise they skip.
They check the report's shape and that every figure is a sane number, never its speed.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

from benchmarks.ekuiper import FLOOR, LABELS, PATHS, SDKS

#: Long enough for two plugins to be packed with their wheels and for ten 3-second cases.
pytestmark = pytest.mark.timeout(600)


def run_benchmark(*options: str, json_out: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "benchmarks", *options, "--tiny", "--json",
                           str(json_out)], cwd=REPO, capture_output=True, text=True,
                          timeout=540)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def check_report(stdout: str, figures: dict[str, dict[str, list[float]]]) -> None:
    """Every path on both SDKs (the official SDK has no decoded sink) and the plain pynng
    sink (the floor) have sane figures."""
    expected = ({f"{path}/{sdk}" for path in PATHS for sdk in SDKS} - {"sink_each/official"}
                | {f"sink/{FLOOR}"})
    assert set(figures) == expected
    for key, got in figures.items():
        if key.startswith("idle/"):
            assert set(got) == {"cpu_ms_per_s", "switches_per_s"}, key
            # An idle plugin may not wake at all within a 1 s window: 0 is sane, and at
            # most every core of the machine is.
            assert all(0 <= v <= 1000 * (os.cpu_count() or 1) for v in got["cpu_ms_per_s"])
            assert all(v >= 0 for v in got["switches_per_s"])
            continue
        assert set(got) == {"rate", "cpu_us", "switches"}, key
        for name, values in got.items():
            assert values, f"{key} {name}: no window"
            for value in values:
                assert math.isfinite(value) and value > 0, f"{key} {name}: {value}"
        assert all(r < 10_000_000 for r in got["rate"]), key
        assert all(c < 1_000_000 for c in got["cpu_us"]), f"{key}: over a second per record"
    table = stdout[stdout.index("| path | official | ours |"):]
    for label in LABELS.values():
        assert f"| {label} |" in table, f"{label!r} missing from:\n{table}"
    assert re.search(r"\| source -> nop sink \| [\d,]+ rec/s, [\d.]+ µs CPU/rec, "
                     r"[\d.]+ switches/rec \| ", table)
    assert re.search(r"ours / floor, CPU per frame: [\d.]+", table), table


def assert_no_sockets_left(stdout: str) -> None:
    """No IPC socket file of the run's names is left in /tmp (they are global)."""
    tag = re.search(r"packing (kb\d+p\d+)_official", stdout)
    assert tag, stdout
    assert not list(Path("/tmp").glob(f"*{tag.group(1)}_*.ipc")), "socket files left behind"


def test_through_the_server_at_a_url(tmp_path: Path, pytestconfig: pytest.Config) -> None:
    url = pytestconfig.getoption("--ekuiper-url") or os.environ.get("EKUIPER_URL")
    if not url:
        pytest.skip("no real eKuiper: pass --ekuiper-url or set EKUIPER_URL")
    python = (pytestconfig.getoption("--ekuiper-python")
              or os.environ.get("EKUIPER_PYTHON_VERSION") or "3.12")
    out = tmp_path / "figures.json"
    proc = run_benchmark("--ekuiper", url, "--ekuiper-python-version", python, json_out=out)
    check_report(proc.stdout, json.loads(out.read_text()))
    assert_no_sockets_left(proc.stdout)


def test_through_a_private_kuiperd(tmp_path: Path, pytestconfig: pytest.Config) -> None:
    binary = pytestconfig.getoption("--kuiperd") or os.environ.get("EKUIPER_KUIPERD")
    if not binary:
        pytest.skip("no kuiperd binary: pass --kuiperd PATH or set EKUIPER_KUIPERD")
    out = tmp_path / "figures.json"
    proc = run_benchmark("--kuiperd", binary, json_out=out)
    check_report(proc.stdout, json.loads(out.read_text()))
    found = re.search(r"private eKuiper at http://127\.0\.0\.1:(\d+), folder (\S+)", proc.stdout)
    assert found, proc.stdout
    folder = found.group(2)
    assert not Path(folder).exists(), "the private server's folder was left behind"
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            assert folder.encode() not in cmdline, f"process {entry} outlived the run"
    assert_no_sockets_left(proc.stdout)


def test_another_checkout_packs_its_own_sdk(tmp_path: Path) -> None:
    """``sdk_tree`` (``--ours``) packs with that checkout's packer and SDK, even when the
    benchmark runs from this checkout (``python -m`` puts the working directory first)."""
    from benchmarks.ekuiper import _pack_vendored

    tree = tmp_path / "other"
    (tree / "ekuiper_sdk" / "tools").mkdir(parents=True)
    (tree / "ekuiper_sdk" / "__init__.py").write_text("")
    (tree / "ekuiper_sdk" / "tools" / "__init__.py").write_text("")
    # A stand-in packer: writes where it was imported from into the zip's path.
    (tree / "ekuiper_sdk" / "tools" / "cli.py").write_text(
        "import sys, ekuiper_sdk\n"
        "open(sys.argv[sys.argv.index('-o') + 1], 'w').write(ekuiper_sdk.__file__)\n")
    folder = tmp_path / "plugin"
    folder.mkdir()
    cwd = os.getcwd()
    os.chdir(REPO)  # as `python -m benchmarks` runs
    try:
        target = _pack_vendored(folder, tmp_path / "p.zip", "3.11", sdk_tree=tree)
    finally:
        os.chdir(cwd)
    assert target.read_text() == str(tree / "ekuiper_sdk" / "__init__.py")
