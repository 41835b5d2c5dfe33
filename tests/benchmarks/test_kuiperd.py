"""The real-eKuiper mode's parts that need no eKuiper: the command line, the private
server's folder, environment and life cycle (against a stand-in kuiperd, real processes),
and the report."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REPO
from helpers.fake_kuiperd import make_fake_kuiperd, started

from benchmarks import ekuiper, kuiperd
from benchmarks.ekuiper import EkuiperBench, Server
from benchmarks.kuiperd import KuiperdError, Ports, PrivateKuiperd
from benchmarks.run import build_parser, check_args


def parse(*argv: str) -> tuple[object, tuple[str, ...]]:
    parser = build_parser()
    args = parser.parse_args(list(argv))
    return args, check_args(parser, args)


# -- the command line


def test_kuiperd_and_its_etc_are_parsed_as_paths() -> None:
    args, only = parse("--kuiperd", "k/bin/kuiperd", "--kuiperd-etc", "k/etc", "--tiny")
    assert args.kuiperd == Path("k/bin/kuiperd")  # type: ignore[attr-defined]
    assert args.kuiperd_etc == Path("k/etc")  # type: ignore[attr-defined]
    assert only == ekuiper.PATHS


@pytest.mark.parametrize("argv, message", [
    (["--ekuiper", "http://127.0.0.1:1", "--kuiperd", "k"], "not allowed with"),
    (["--kuiperd-etc", "etc"], "--kuiperd-etc needs --kuiperd"),
    (["--kuiperd", "k", "--only", "source,func"], "unknown measurement(s) func"),
    (["--only", "function"], "unknown measurement(s) function"),
])
def test_contradictory_options_are_usage_errors(argv: list[str], message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse(*argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_only_picks_the_paths_through_a_server() -> None:
    assert parse("--ekuiper", "http://127.0.0.1:1", "--only", "idle,sink")[1] == ("idle", "sink")


def test_a_missing_binary_is_one_line_before_anything_is_installed(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--kuiperd",
                           str(tmp_path / "nowhere"), "--tiny"], capture_output=True, text=True,
                          cwd=REPO, timeout=60,
                          env=dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache")))
    assert proc.returncode == 1
    assert proc.stderr == (f"benchmark: no kuiperd at {tmp_path / 'nowhere'}; pass the path "
                           "of a built eKuiper's bin/kuiperd\n")
    assert not (tmp_path / "cache").exists(), "the official SDK was installed first"


def test_tiny_wins_over_quick_and_each_is_shorter() -> None:
    assert ekuiper.plan_for(quick=True, tiny=True) == ekuiper.TINY
    assert ekuiper.plan_for(quick=False, tiny=False) == ekuiper.FULL

    def seconds(plan: ekuiper.Plan) -> float:
        return plan.rounds * plan.windows * plan.window_s

    assert seconds(ekuiper.TINY) < seconds(ekuiper.QUICK) < seconds(ekuiper.FULL)


def test_names_carry_the_server_port_and_the_process() -> None:
    bench = EkuiperBench(Server("http://127.0.0.1:9381/"), 1.0, 1, "3.11")
    assert bench.names["official"] == f"kb9381p{os.getpid()}_official"
    assert bench.feeder.startswith(f"kb9381p{os.getpid()}_")


# -- the private server's folder and environment


def test_the_folder_links_the_binary_and_copies_etc(tmp_path: Path) -> None:
    binary = make_fake_kuiperd(tmp_path / "ek", "serve")
    run = tmp_path / "run"
    run.mkdir()
    kuiperd.prepare_folder(run, binary, kuiperd.find_etc(binary))
    assert (run / "bin" / "kuiperd").resolve() == binary.resolve()
    assert (run / "etc" / "sources" / "memory.yaml").read_text() == "default: {}\n"
    for sub in ("data", "log", "etc/sinks", "etc/services/schemas",
                *(f"plugins/{p}" for p in kuiperd.PLUGIN_DIRS)):
        assert (run / sub).is_dir(), sub
    assert list((run / "data").iterdir()) == []
    (run / "etc" / "sources" / "mine.yaml").write_text("x: 1\n")  # an install writes here
    assert not (tmp_path / "ek" / "etc" / "sources" / "mine.yaml").exists()


def test_etc_is_taken_from_the_option_when_given(tmp_path: Path) -> None:
    binary = make_fake_kuiperd(tmp_path / "ek", "serve")
    with pytest.raises(KuiperdError, match=r"no .*kuiper.yaml in --kuiperd-etc"):
        kuiperd.find_etc(binary, tmp_path)
    assert kuiperd.find_etc(binary, tmp_path / "ek" / "etc") == tmp_path / "ek" / "etc"


def test_a_binary_that_cannot_run_is_refused(tmp_path: Path) -> None:
    (tmp_path / "kuiperd").write_text("")
    with pytest.raises(KuiperdError, match="is not executable"):
        kuiperd.check_binary(tmp_path / "kuiperd")


def test_the_environment_pins_loopback_ports_and_python() -> None:
    env = kuiperd.server_env({"PATH": "/bin", "KUIPER__BASIC__PPROF": "true",
                              "KUIPER__PORTABLE__PYTHONBIN": "/other", "KuiperBaseKey": "/x"},
                             Path("/run"), Ports(11, 12, 13), "/py")
    assert env["PATH"] == "/bin" and env["KuiperBaseKey"] == "/run"
    assert (env["KUIPER__BASIC__RESTPORT"], env["KUIPER__BASIC__PORT"],
            env["KUIPER__SOURCE__HTTPSERVERPORT"]) == ("11", "12", "13")
    assert {env[k] for k in env if k.endswith("IP")} == {"127.0.0.1"}
    assert {"KUIPER__BASIC__RESTIP", "KUIPER__BASIC__IP",
            "KUIPER__SOURCE__HTTPSERVERIP"} <= set(env)
    assert env["KUIPER__BASIC__PROMETHEUS"] == env["KUIPER__BASIC__PPROF"] == "false"
    assert env["KUIPER__PORTABLE__PYTHONBIN"] == "/py"


def test_free_ports_can_be_bound() -> None:
    ports = kuiperd.free_ports()
    assert len({ports.rest, ports.cli, ports.http}) == 3
    for port in (ports.rest, ports.cli, ports.http):
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


# -- the life cycle, against a stand-in kuiperd


def gone(pid: int) -> bool:
    """True once ``pid`` has ended (a zombie waiting for its new parent counts)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def pids_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Where the stand-in records the pids it starts; they are all ended afterwards."""
    path = tmp_path / "pids"
    monkeypatch.setenv("FAKE_KUIPERD_PIDS", str(path))
    yield path
    for pid in sum(started(path).values(), []):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("mode", ["serve", "stubborn", "busy-once"])
def test_the_server_starts_and_leaves_nothing_behind(tmp_path: Path, mode: str,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     pids_file: Path) -> None:
    # "stubborn" ignores SIGTERM: the stop then kills it once this has passed.
    monkeypatch.setattr(kuiperd, "STOP_TIMEOUT", 1.0)
    binary = make_fake_kuiperd(tmp_path / "ek", mode)
    marker = f"kbtest{uuid.uuid4().hex[:8]}"
    with PrivateKuiperd(binary, "/the/python", log=lambda _: None) as server:
        server.add_ipc_marker(marker)
        stale = Path(f"/tmp/plugin_{marker}_official.ipc")
        stale.write_text("")  # as eKuiper leaves a plugin's control socket
        run = server.run_dir
        assert run is not None and server.ports is not None
        with urllib.request.urlopen(server.url + "/", timeout=10) as resp:
            assert json.loads(resp.read()) == {"version": "fake"}
        seen = json.loads((run / "env.json").read_text())
        assert seen["cwd"] == str(run)
        assert seen["env"]["KUIPER__PORTABLE__PYTHONBIN"] == "/the/python"
        assert seen["env"]["KUIPER__BASIC__RESTPORT"] == str(server.ports.rest)
    assert not run.exists()
    assert not stale.exists()
    pids = started(pids_file)
    assert len(pids["server"]) == (2 if mode == "busy-once" else 1)
    assert all(gone(pid) for pid in pids["server"] + pids["plugin"]), \
        "a server or plugin process outlived the run"


def test_a_server_that_exits_is_one_line_with_its_log(tmp_path: Path) -> None:
    binary = make_fake_kuiperd(tmp_path / "ek", "exit")
    server = PrivateKuiperd(binary, "/py", log=lambda _: None)
    with pytest.raises(KuiperdError) as err:
        with server:
            pass
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("kuiperd exited with code 3 before its REST API answered")
    assert message.endswith("the end of its log: level=info msg=starting | "
                            "level=fatal msg=cannot open the store")
    assert server.run_dir is None


def test_a_taken_pprof_port_is_one_line_and_no_retry(tmp_path: Path, pids_file: Path) -> None:
    binary = make_fake_kuiperd(tmp_path / "ek", "pprof-busy")
    with pytest.raises(KuiperdError, match=r"serves pprof on port 6060 .*\(unshare --net\)$"):
        with PrivateKuiperd(binary, "/py", log=lambda _: None):
            pass
    assert len(started(pids_file)["server"]) == 1  # other ports would not help


def test_a_server_that_never_answers_is_stopped(tmp_path: Path, pids_file: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kuiperd, "START_TIMEOUT", 1.0)
    binary = make_fake_kuiperd(tmp_path / "ek", "silent")
    with pytest.raises(KuiperdError, match="did not answer at http://127.0.0.1:.* within 1 s; "
                                           "the end of its log: \\(empty log\\)"):
        with PrivateKuiperd(binary, "/py", log=lambda _: None):
            pass
    assert [gone(pid) for pid in started(pids_file)["server"]] == [True]


def test_the_kernel_stops_the_server_of_a_killed_benchmark(tmp_path: Path,
                                                           pids_file: Path) -> None:
    binary = make_fake_kuiperd(tmp_path / "ek", "serve")
    script = ("import os, signal, sys\n"
              "from pathlib import Path\n"
              "from benchmarks.kuiperd import PrivateKuiperd\n"
              f"k = PrivateKuiperd(Path({str(binary)!r}), '/py', log=print)\n"
              "k.__enter__()\n"
              "print(k.run_dir, flush=True)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run = Path(proc.stdout.strip())
    try:
        assert [gone(pid) for pid in started(pids_file)["server"]] == [True]
    finally:
        shutil.rmtree(run, ignore_errors=True)  # the next run would sweep it


def test_the_folders_of_killed_runs_are_swept(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    marker = f"kbtest{uuid.uuid4().hex[:8]}"
    (tmp_path / "ekuiper-bench-kuiperd-dead").mkdir()
    (tmp_path / "ekuiper-bench-kuiperd-dead" / "owner.json").write_text(
        json.dumps({"pid": dead.pid, "markers": [marker]}))
    (tmp_path / f"plugin_{marker}_ours.ipc").write_text("")
    (tmp_path / "ekuiper-bench-kuiperd-alive").mkdir()
    (tmp_path / "ekuiper-bench-kuiperd-alive" / "owner.json").write_text(
        json.dumps({"pid": os.getpid(), "markers": []}))
    (tmp_path / "ekuiper-bench-kuiperd-new").mkdir()  # being made: no owner yet
    removed = kuiperd.sweep_abandoned(tmp_path)
    assert removed == [tmp_path / "ekuiper-bench-kuiperd-dead"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ekuiper-bench-kuiperd-alive",
                                                          "ekuiper-bench-kuiperd-new"]


# -- the report


def test_the_table_gives_medians_and_the_cpu_ratio() -> None:
    bench = EkuiperBench(Server("http://127.0.0.1:1"), 1.0, 1, "3.11", tag="kbt")
    bench.results = {
        "source/official": {"rate": [100.0, 300.0, 200.0], "cpu_us": [40.0, 50.0, 60.0]},
        "source/ours": {"rate": [1000.0, 3000.0], "cpu_us": [10.0, 20.0]},
        "sink/ours": {"rate": [5.0], "cpu_us": [20.0]},
        "sink_each/ours": {"rate": [5.0], "cpu_us": [30.0]},
    }
    lines = bench.table().splitlines()
    assert lines[2] == ("| source -> nop sink | 200 rec/s, 50.0 µs CPU/rec | "
                        "2,000 rec/s, 15.0 µs CPU/rec | 0.30 |")
    assert lines[3] == "| sink, bytes | - | 5 rec/s, 20.0 µs CPU/rec | - |"
    assert lines[4] == '| sink, records="each" | - | 5 rec/s, 30.0 µs CPU/rec | - |'
    assert lines[-1] == 'ours, records="each" / bytes, CPU per frame: 1.50'
    assert not any("function" in line or "idle" in line for line in lines)


def test_the_doc_examples_of_the_modules_hold() -> None:
    import doctest

    for module in (ekuiper, kuiperd):
        assert doctest.testmod(module).failed == 0, module.__name__
