"""``server_script``: a script run on eKuiper as the install.sh of a plugin made to fail.
The parsing runs everywhere; the rest against a private real eKuiper (``--kuiperd``)."""

from __future__ import annotations

import io
import zipfile

import pytest
from helpers.pack_helpers import unique_name
from helpers.private_server import private_kuiperd  # noqa: F401 - a fixture

from benchmarks.kuiperd import PrivateKuiperd
from ekuiper_sdk.errors import RestError
from ekuiper_sdk.tools import server_script
from ekuiper_sdk.tools.archive import zip_bytes
from ekuiper_sdk.tools.rest import RestClient


def test_ekuipers_failure_text_gives_back_the_scripts_output() -> None:
    text = ("portable plugin create command error: fail to install plugin: err:exit status 3 "
            "stdout:one\ntwo stderr:pip says no\ninstall.sh: the reason\n")
    assert server_script.install_sh_output(text) == (3, "one\ntwo", "pip says no\n"
                                                     "install.sh: the reason\n")
    assert server_script.install_sh_reason(text) == ("install.sh failed on the server: "
                                                     "the reason")
    assert server_script.install_sh_reason("fail to install plugin: plugin h control "
                                           "handshake error: receive time out") is None


def test_the_script_zip_has_no_folder_for_eKuiper_to_leave_behind() -> None:
    entries = server_script.script_zip("probe_1", "echo hi")
    names = zipfile.ZipFile(io.BytesIO(zip_bytes(entries))).namelist()
    assert sorted(names) == ["install.sh", "probe_1.json", "probe_1.py"]
    script = next(e for e in entries if e.name == "install.sh").data.decode()
    assert script.rstrip().endswith(f"echo {server_script.DONE_MARK}\nexit 1")


def test_a_script_runs_on_the_server_and_leaves_nothing(
        private_kuiperd: PrivateKuiperd) -> None:  # noqa: F811
    client = RestClient(private_kuiperd.url)
    name = unique_name("h24s")
    out = server_script.run_script(client, name, "pwd; echo to-stderr >&2; uname -m")
    assert out.stdout.splitlines()[0].endswith(f"/plugins/portable/{name}")
    assert out.stderr == "to-stderr\n"
    assert private_kuiperd.run_dir is not None
    assert not (private_kuiperd.run_dir / "plugins" / "portable" / name).exists()
    assert all(p.get("name") != name for p in client.list_plugins())


def test_a_script_that_fails_itself_is_an_error_not_output(
        private_kuiperd: PrivateKuiperd) -> None:  # noqa: F811
    client = RestClient(private_kuiperd.url)
    name = unique_name("h24s")
    with pytest.raises(RestError) as info:
        server_script.run_script(client, name, "echo half; exit 2")
    assert "exit status 2" in info.value.message and "half" in info.value.message
    assert private_kuiperd.run_dir is not None
    assert not (private_kuiperd.run_dir / "plugins" / "portable" / name).exists()


def test_an_interrupted_script_still_leaves_nothing(private_kuiperd: PrivateKuiperd  # noqa: F811
                                                    ) -> None:
    """Ctrl-C while eKuiper runs the script: the script's failure is the server's own doing,
    so eKuiper removes the plugin when the script ends, and the upload is deleted here."""
    import signal
    import subprocess
    import sys
    import time

    name = unique_name("h24s")
    code = ("import sys; from ekuiper_sdk.tools.rest import RestClient; "
            "from ekuiper_sdk.tools.server_script import run_script; "
            f"run_script(RestClient({private_kuiperd.url!r}), {name!r}, 'sleep 3', "
            "via='upload')")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    run = private_kuiperd.run_dir
    assert run is not None
    folder = run / "plugins" / "portable" / name
    deadline = time.monotonic() + 20
    while not folder.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert folder.exists(), "eKuiper never started the script"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert "KeyboardInterrupt" in err
    deadline = time.monotonic() + 20
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not folder.exists()
    assert not list((run / "data" / "uploads").glob(f"{name}*"))
    assert all(p.get("name") != name for p in RestClient(private_kuiperd.url).list_plugins())
