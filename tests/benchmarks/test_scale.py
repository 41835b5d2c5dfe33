"""The scale mode (``python -m benchmarks --scale``): its command line, how it finds and
measures a plugin's processes (real processes), the Go plugin's zip, the report, and one
tiny run through a real eKuiper when a kuiperd binary is given (otherwise that one skips).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REPO
from helpers.pack_helpers import unique_name

from benchmarks import scale
from benchmarks.run import build_parser, check_args


def parse(*argv: str) -> object:
    parser = build_parser()
    args = parser.parse_args(list(argv))
    check_args(parser, args)
    return args


# -- the command line


def test_scale_takes_the_rule_counts_and_defaults_to_four() -> None:
    args = parse("--scale", "--kuiperd", "k/bin/kuiperd")
    assert scale.parse_rules(args.rules) == (1, 10, 100, 500)  # type: ignore[attr-defined]
    args = parse("--scale", "--ekuiper", "http://127.0.0.1:1", "--rules", "2,20")
    assert scale.parse_rules(args.rules) == (2, 20)  # type: ignore[attr-defined]


@pytest.mark.parametrize("argv, message", [
    (["--scale"], "--scale needs a server"),
    (["--scale", "--kuiperd", "k", "--rules", "1,x"], "--rules takes positive whole numbers"),
    (["--scale", "--kuiperd", "k", "--rules", "-1"], "--rules takes positive whole numbers"),
    (["--scale", "--kuiperd", "k", "--only", "idle"], "--only does not apply to --scale"),
    (["--kuiperd", "k", "--rules", "10"], "--rules needs --scale"),
    (["--kuiperd", "k", "--go-plugin", "/bin/sh"], "--go-plugin needs --scale"),
    (["--kuiperd", "k", "--supervised"], "--supervised needs --scale"),
    (["--scale", "--kuiperd", "k", "--go-plugin", "/nowhere/plugin"],
     "--go-plugin /nowhere/plugin: no executable file there"),
])
def test_wrong_scale_options_are_one_line_usage_errors(
        argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(*argv)
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in last, last


# -- the plugin's processes


@pytest.fixture
def plugin_tree(tmp_path: Path) -> Iterator[tuple[str, int, int]]:
    """A process run as eKuiper runs a plugin (its script in ``.../portable/<name>/``)
    with two threads and a child process, as a supervised plugin has workers: its name,
    its pid and the child's."""
    name = unique_name("hsc")
    folder = tmp_path / "plugins" / "portable" / name
    folder.mkdir(parents=True)
    script = folder / f"{name}.py"
    script.write_text(textwrap.dedent("""
        import subprocess, sys, threading, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        print(child.pid, flush=True)
        time.sleep(60)
    """))
    proc = subprocess.Popen([sys.executable, "-u", str(script)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    try:
        yield name, proc.pid, child
    finally:
        os.kill(child, signal.SIGKILL)
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_a_plugin_is_found_with_every_process_under_it(
        plugin_tree: tuple[str, int, int]) -> None:
    name, pid, child = plugin_tree
    assert scale.plugin_processes(name) == {pid, child}
    got = scale.footprint({pid, child})
    assert got.processes == 2
    assert got.threads >= 3  # the plugin's two and the child's one
    assert got.fds >= 6  # stdin, stdout and stderr of each
    assert got.rss_kib > got.pss_kib > 0  # the two interpreters share their pages
    cpu, switched = scale.window_delta({}, scale.thread_times({pid, child}))
    assert cpu > 0 and switched > 0  # starting an interpreter takes both


def test_no_process_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="no running process for plugin hscnothing"):
        scale.plugin_processes("hscnothing")


def test_cpu_of_a_busy_process_grows_with_its_work() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        before = scale.thread_times({proc.pid})
        time.sleep(0.5)
        cpu, _ = scale.window_delta(before, scale.thread_times({proc.pid}))
    finally:
        proc.kill()
        proc.wait()
    assert cpu > 100  # ms: a spinning loop on a shared 2-core machine


def test_a_thread_that_ends_in_a_window_never_makes_it_negative() -> None:
    code = ("import threading, time\n"
            "def spin():\n"
            "    end = time.monotonic() + 0.4\n"
            "    while time.monotonic() < end: pass\n"
            "t = threading.Thread(target=spin); t.start(); t.join()\n"
            "print('done', flush=True); time.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        time.sleep(0.2)  # the spinning thread runs
        before = scale.thread_times({proc.pid})
        assert len(before) == 2
        assert proc.stdout is not None and proc.stdout.readline() == b"done\n"
        cpu, _ = scale.window_delta(before, scale.thread_times({proc.pid}))
    finally:
        proc.kill()
        proc.wait()
    assert 0 <= cpu < 50  # the ended thread's 0.2-0.4 s of CPU is not subtracted


def test_descendants_follow_the_tree_only() -> None:
    parents = {1: 0, 5: 1, 6: 5, 7: 6, 8: 1, 9: 8}
    assert scale.descendants({5}, parents) == {5, 6, 7}
    assert scale.descendants({9}, parents) == {9}


# -- the Go plugin's zip


def test_the_go_zip_names_the_binary_after_the_plugin(tmp_path: Path) -> None:
    binary = tmp_path / "goscale"
    binary.write_bytes(b"\x7fELF binary")
    binary.chmod(0o755)
    out = scale.go_zip(binary, "hscgo_n1r1", tmp_path / "p.zip")
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("hscgo_n1r1.json"))
        assert manifest == {"version": "v1.0.0", "language": "go", "executable": "hscgo_n1r1",
                            "sources": ["hscgo_n1r1_src"], "sinks": ["hscgo_n1r1_sink"],
                            "functions": ["hscgo_n1r1_fn"]}
        assert zf.read("hscgo_n1r1") == b"\x7fELF binary"  # bytes kept: no renaming inside
        assert (zf.getinfo("hscgo_n1r1").external_attr >> 16) & 0o111
        assert "idle:" in zf.read("sources/hscgo_n1r1_src.yaml").decode()


# -- the report


def test_the_table_has_a_row_per_sdk_and_count_and_the_ratios() -> None:
    figures = {"rss_kib": [10240, 20480, 30720], "threads": [12], "fds": [14],
               "idle_cpu_ms_per_s": [1.5], "running": [10], "after_rss_kib": [11264]}
    results = {"official/1": {"rss_kib": [10240]}, "ours/1": {"rss_kib": [5120]},
               "official/10": figures, "ours/10": {**figures, "rss_kib": [10240]}}
    table = scale.scale_table(results, ("official", "ours"), (1, 10))
    assert "| 10 | official | 10/10 | 20.0 | - | 12 | 14 | 1.50 |" in table  # the median
    assert "| 1 | 0.50 | - |" in table and "| 10 | 0.50 | - | 1.00 | 1.00 | 1.00 |" in table
    assert "| official | - | +1.0 |" in table  # no after-figure at 1: none shown
    assert "| ours | - | +6.0 |" in table


def test_a_plugin_that_ended_is_marked_in_its_row() -> None:
    results = {"ours/5": {"rss_kib": [10240], "running": [5], "plugin_exited": [1]}}
    table = scale.scale_table(results, ("ours",), (5,))
    assert "| 5 | ours (its process ended) | 5/5 | 10.0 |" in table


# -- through a real eKuiper


def test_a_tiny_scale_run_through_a_private_kuiperd(tmp_path: Path,
                                                    pytestconfig: pytest.Config) -> None:
    binary = pytestconfig.getoption("--kuiperd") or os.environ.get("EKUIPER_KUIPERD")
    if not binary:
        pytest.skip("no kuiperd binary: pass --kuiperd PATH or set EKUIPER_KUIPERD")
    out = tmp_path / "figures.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--scale", "--tiny", "--rules",
                           "1,3", "--supervised", "--kuiperd", binary, "--json", str(out)],
                          cwd=REPO,
                          capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    figures = json.loads(out.read_text())
    sdks = ("official", "ours", "supervised")
    assert set(figures) == {f"{sdk}/{n}" for sdk in sdks for n in (1, 3)}
    for key, got in figures.items():
        n = int(key.split("/")[1])
        assert got["running"] == [n], key
        # supervised: the process eKuiper started, its worker and the spare
        assert got["processes"] == [3 if key.startswith("supervised") else 1], key
        assert got["after_idle_cpu_ms_per_s"][0] >= 0, key
        assert got["rss_kib"][0] > 1024 and got["threads"][0] >= 2, key
        assert got["cpu_us_per_record"][0] > 0, key
        assert 0 < got["create_s"][0] < 60 and 0 < got["delete_s"][0] < 60, key
    for sdk in sdks:  # every rule holds descriptors of its own
        assert figures[f"{sdk}/3"]["fds"][0] > figures[f"{sdk}/1"]["fds"][0]
    assert re.search(r"\| 3 \| ours \| 3/3 \| [\d.]+ \| [\d.]+ \| \d+ \| \d+ \|", proc.stdout)
    tag = re.search(r"packing (kb\d+p\d+)_official", proc.stdout)
    assert tag, proc.stdout
    assert not list(Path("/tmp").glob(f"*{tag.group(1)}_*.ipc")), "socket files left behind"
