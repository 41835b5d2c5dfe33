"""``python -m benchmarks.kuiperd_fleet``: N servers, each with its own ports and /tmp."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.fake_fleet import free_port_runs
from helpers.fake_kuiperd import make_fake_kuiperd, started

from benchmarks.kuiperd import KuiperdError, Ports
from benchmarks.kuiperd_fleet import Fleet, parse_env


@pytest.mark.parametrize("value, message", [
    ("H25=1", "is not I:KEY=VALUE"), ("x:H25=1", "is not I:KEY=VALUE"),
    ("3:=1", "is not I:KEY=VALUE"), ("9:H25=1", "there are only 2 servers"),
])
def test_a_bad_env_option_is_one_line(value: str, message: str) -> None:
    with pytest.raises(KuiperdError, match=message):
        parse_env([value], 2)


def unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           "mount -t tmpfs tmpfs /tmp"], capture_output=True, check=False)
    return done.returncode == 0


@pytest.fixture
def outside_tmp() -> Iterator[Path]:
    """A folder off /tmp: each server's /tmp is a fresh tmpfs that would hide it."""
    folder = Path(tempfile.mkdtemp(prefix="kuiperd-fleet-test-", dir="/var/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(not unshare_works(), reason="needs unshare --mount (root)")
def test_each_server_has_its_own_ports_env_and_tmp(outside_tmp: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pids = outside_tmp / "pids"
    monkeypatch.setenv("FAKE_KUIPERD_PIDS", str(pids))
    binary = make_fake_kuiperd(outside_tmp / "ek", "serve")
    marker = Path(tempfile.gettempdir()) / f"kuiperd-fleet-{uuid.uuid4().hex}"
    marker.write_text("only on the host's /tmp")
    base = Ports(*free_port_runs(2))
    fleet = Fleet(binary, "/usr/bin/python3", 2, outside_tmp / "runs", base,
                  {1: {"H25_MARK": "one"}}, keep=False)
    try:
        fleet.start()
        assert fleet.urls == [f"http://127.0.0.1:{base.rest}",
                              f"http://127.0.0.1:{base.rest + 1}"]
        for url in fleet.urls:
            with urllib.request.urlopen(url + "/", timeout=5) as resp:
                assert resp.status == 200
        envs = [json.loads((outside_tmp / "runs" / f"server-{i}" / "env.json").read_text())
                for i in range(2)]
        assert [e["env"]["KUIPER__BASIC__RESTPORT"] for e in envs] == \
            [str(base.rest), str(base.rest + 1)]
        assert "H25_MARK" not in envs[0]["env"] and envs[1]["env"]["H25_MARK"] == "one"
        for proc in fleet.procs:
            # The server's view of /tmp, through its own mount namespace.
            assert marker.name not in os.listdir(f"/proc/{proc.pid}/root/tmp")
    finally:
        fleet.stop()
        marker.unlink()
    assert not (outside_tmp / "runs").exists()
    # The servers and the "plugin" each left behind (it ignores SIGTERM) are all gone.
    recorded = started(pids)
    assert len(recorded["server"]) == 2 and len(recorded["plugin"]) == 2
    for pid in recorded["server"] + recorded["plugin"]:
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z", pid
