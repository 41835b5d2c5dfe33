"""``ekuiper-plugin``: exit statuses, one-line errors, and each command end to end."""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from helpers import ekuiper_install_rules as rules
from helpers.fake_ekuiper_rest import FakeEkuiper
from helpers.pack_helpers import builtin_host, manifest_of, unique_name, write_manifest

from ekuiper_sdk.hosts import HostGeneration
from ekuiper_sdk.status_file import StatusFile, status_path
from ekuiper_sdk.tools.cli import main


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def init(tmp_path: Path) -> Path:
    name = unique_name("cli")
    code, out, err = run("init", name, "--dir", str(tmp_path / name))
    assert code == 0, err
    assert "created" in out
    return tmp_path / name


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error: ")]


def test_init_validate_pack(tmp_path: Path) -> None:
    plugin = init(tmp_path)
    code, out, err = run("validate", str(plugin))
    assert code == 0 and out.startswith(f"ok: {plugin.name} 0.1.0 (python)"), err
    zip_path = tmp_path / "out.zip"
    code, out, err = run("pack", str(plugin), "-o", str(zip_path))
    assert code == 0, err
    assert out.startswith(f"wrote {zip_path}")
    assert "add --vendor" in err  # the warning that the zip carries no wheels
    assert rules.check(zip_path, plugin.name, tmp_path / "ek") == []


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    plugin = init(tmp_path)
    code, _, err = run("init", plugin.name, "--dir", str(plugin))
    assert code == 1 and "already exists" in err and "--force" in err
    assert run("init", "bad/name", "--dir", str(tmp_path / "x"))[0] == 1


def test_pack_json_and_layout(tmp_path: Path) -> None:
    plugin = init(tmp_path)
    layout = tmp_path / "layout"
    code, out, err = run("pack", str(plugin), "--layout", str(layout), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["zip"] is None and data["layout"] == str(layout)
    assert f"{plugin.name}.json" in data["files"]
    assert (layout / "plugins" / "portable" / plugin.name / "main.py").is_file()
    [src] = manifest_of(plugin)["sources"]
    assert (layout / "etc" / "sources" / f"{src}.yaml").is_file()
    assert (layout / "data" / "sources" / f"{src}.yaml").is_file()


BAD_CASES = ["missing-manifest", "wrong-name", "missing-yaml", "undefined-symbol",
             "dotted-executable"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_gives_one_clear_line(tmp_path: Path, case: str) -> None:
    plugin = init(tmp_path)
    data = manifest_of(plugin)
    if case == "missing-manifest":
        next(plugin.glob("*.json")).unlink()
        expect = "no plugin manifest"
    elif case == "wrong-name":
        write_manifest(plugin, dict(data, name="other"))
        expect = "'other'"
    elif case == "missing-yaml":
        for yaml in (plugin / "sources").glob("*.yaml"):
            yaml.unlink()
        expect = ".yaml: missing"
    elif case == "undefined-symbol":
        write_manifest(plugin, dict(data, sinks=data["sinks"] + ["nowhere"]))
        expect = "sink 'nowhere' is declared but"
    else:
        write_manifest(plugin, dict(data, executable="./main.py"))
        expect = "such as 'main.py'"
    for command in ("validate", "pack"):
        code, out, err = run(command, str(plugin), "-o", str(tmp_path / "x.zip")) \
            if command == "pack" else run(command, str(plugin))
        assert code == 1, (command, out, err)
        lines = error_lines(err)
        assert lines and any(expect in line for line in lines), err
        assert all(str(plugin) in line for line in lines), lines
    assert not (tmp_path / "x.zip").exists()


def test_validate_json(tmp_path: Path) -> None:
    plugin = init(tmp_path)
    code, out, _ = run("validate", str(plugin), "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"] and data["defined"]["functions"] == \
        manifest_of(plugin)["functions"]
    (plugin / "main.py").write_text("raise SystemExit(3)\n")
    code, out, _ = run("validate", str(plugin), "--json")
    assert code == 1 and "exit 3" in json.loads(out)["errors"][0]


#: A release of each generation, as ``GET /`` names it.
VERSIONS = {"1.x": "1.14.7", "2.0-2.1.2": "2.1.2", "2.1.3+": "2.4.0-27-g0014e7fab"}


def test_rest_commands_against_the_fake_server(tmp_path: Path,
                                               host_generation: HostGeneration) -> None:
    plugin = init(tmp_path)
    zip_path = tmp_path / f"{plugin.name}.zip"
    assert run("pack", str(plugin), "-o", str(zip_path))[0] == 0
    version = VERSIONS[host_generation.name]
    lazy = not host_generation.status_route
    server_note = f" [eKuiper {version}, generation {host_generation.name}]" + (
        f"; eKuiper {version} has no plugin status; it starts the plugin when a rule first "
        "uses it and stops it a second after the last one stops" if lazy else "")
    state = "installed" if lazy else "running"
    with FakeEkuiper(tmp_path / "ek", version=version) as ek:
        server = ["--server", ek.url]
        code, out, err = run("list", *server)
        assert (code, out) == (0, "no portable plugins installed\n"), err
        code, out, err = run("install", str(zip_path), *server, "--settle", "0")
        assert code == 0, err
        assert out == (f"portable plugin {plugin.name} is created (via file); status: {state}"
                       f"{server_note}\n")
        code, out, err = run("install", str(zip_path), *server, "--json", "--settle", "0")
        assert code == 1
        failure = json.loads(out)
        assert failure["ok"] is False and failure["status"] == 400
        assert failure["error"].endswith("duplicate") and "update" in failure["hint"]
        assert error_lines(err) == [f"error: {failure['error']}; {failure['hint']}"]
        code, out, err = run("update", str(zip_path), *server, "--json", "--settle", "0")
        assert code == 0 and json.loads(out)["message"].endswith("is updated"), err
        assert json.loads(out)["status"]["server"] == {"version": version,
                                                       "generation": host_generation.name}
        code, out, _ = run("list", *server, "--json")
        assert [p["name"] for p in json.loads(out)] == [plugin.name]
        code, out, _ = run("list", *server)
        assert out.startswith(f"{plugin.name} 0.1.0 (python) sources: ")
        code, out, _ = run("status", plugin.name, *server)
        assert (code, out) == (0, f"{plugin.name}: {state}{server_note}\n")
        # The plugin's own view, from its status file in eKuiper's data folder.
        data = tmp_path / "data"
        StatusFile(status_path(str(data / "ekuiper-sdk-state"), plugin.name)).update(
            mode="supervised", restarts=2, last_cause="killed by signal SIGSEGV",
            hung_calls=1, crash_loop=False)
        code, out, _ = run("status", plugin.name, *server, "--data-dir", str(data))
        assert (code, out.splitlines()[1:]) == (0, [
            "  the plugin says: supervised, 2 restarts (last: killed by signal SIGSEGV), "
            f"1 hung call, 0 lingering source threads ({data}/ekuiper-sdk-state/"
            f"status-{plugin.name}.json)"])
        code, out, _ = run("status", plugin.name, *server, "--data-dir", str(data), "--json")
        assert json.loads(out)["plugin_view"]["restarts"] == 2
        if not lazy:
            ek.statuses[plugin.name] = {"refCount": {"r1": 1}, "status": "error",
                                        "errMsg": "exit status 1"}
            code, out, _ = run("status", plugin.name, *server)
            # refCount's rule, with the state the rule list gives (none here: unknown).
            assert code == 1 and out == (f"{plugin.name}: error (exit status 1); used by r1 "
                                         f"(unknown){server_note}\n")
            # A rule that only calls a function is not in refCount; the rule list finds it.
            function = manifest_of(plugin)["functions"][0]
            ek.rules = {"r1": {"id": "r1", "sql": "SELECT x FROM s", "actions": [],
                               "status": "stopped"},
                        "calls": {"id": "calls", "sql": f"SELECT {function}(x) FROM s",
                                  "actions": []}}
            code, out, _ = run("status", plugin.name, *server)
            assert out == (f"{plugin.name}: error (exit status 1); used by calls (running), "
                           f"r1 (stopped){server_note}\n"), out
        code, out, _ = run("delete", plugin.name, *server)
        assert (code, out) == (0, f"portable plugin {plugin.name} is deleted\n")
        code, out, err = run("delete", plugin.name, *server)
        assert code == 1 and "is not found" in err
        code, out, err = run("status", "nothing", *server)
        assert code == 1 and error_lines(err)[0].startswith(
            "error: describe portable plugin nothing error: not found" if lazy else
            "error: portable plugin nothing not found")
        assert "does not look like eKuiper" not in err


def test_unreachable_server_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, err = run("list", "--server", f"http://127.0.0.1:{port}", "--timeout", "5")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: cannot reach eKuiper at "
                                                    f"http://127.0.0.1:{port}")
    # The library names the parameter; the command line words it as its option.
    assert err.endswith("start it or pass --server\n")


def test_install_of_a_missing_or_foreign_zip(tmp_path: Path) -> None:
    code, _, err = run("install", str(tmp_path / "nope.zip"))
    assert code == 1 and "no such file" in err
    notzip = tmp_path / "x.zip"
    notzip.write_text("hello")
    code, _, err = run("install", str(notzip))
    assert code == 1 and "is not a readable zip" in err
    empty = tmp_path / "e.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("readme.txt", "")
    code, _, err = run("install", str(empty))
    assert code == 1 and "no <name>.json at its root" in err


def test_run_needs_the_builtin_host(tmp_path: Path) -> None:
    builtin_host()
    plugin = init(tmp_path)
    code, out, err = run("run", str(plugin), "--count", "2", "--timeout", "30")
    assert code == 0, err
    assert out.strip()


def test_usage_errors_exit_2() -> None:
    assert run()[0] == 2
    assert run("pack")[0] == 2
    assert run("install", "x.zip", "--via", "carrier-pigeon")[0] == 2


def test_console_script_is_installed() -> None:
    proc = subprocess.run([sys.executable, "-m", "ekuiper_sdk.tools.cli", "--help"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0
    for command in ("init", "validate", "pack", "run", "install", "update", "delete", "list",
                    "status"):
        assert command in proc.stdout


def test_run_passes_its_choices_to_run_pipeline(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # Stands in for the built-in host, to pin down the call `run` makes.
    import types
    calls = []

    def run_pipeline(plugin_dir: Path, options: RunOptions, **kw: Any) -> None:
        calls.append((plugin_dir, options))
        kw["out"].write("src -> fn -> sink\n")

    from ekuiper_sdk.tools.run.pipeline import RunOptions, RunSummary
    fake = types.ModuleType("ekuiper_sdk.tools.run.pipeline")
    fake.run_pipeline = run_pipeline  # type: ignore[attr-defined]
    fake.RunSummary = RunSummary  # type: ignore[attr-defined]
    fake.RunOptions = RunOptions  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ekuiper_sdk.tools.run.pipeline", fake)
    plugin = init(tmp_path)
    code, out, err = run("run", str(plugin), "--function", "f", "--count", "3")
    assert code == 0, err
    [(where, options)] = calls
    assert where == plugin
    assert options.source is None and options.function == "f" and options.sink is None
    assert options.count == 3 and options.timeout == 30.0 and options.conf_key is None
    assert out == "src -> fn -> sink\n"
    (plugin / "main.py").write_text("raise SystemExit(1)\n")
    code, _, err = run("run", str(plugin))
    assert code == 1 and len(calls) == 1 and "failed to list its symbols" in err


def test_platform_option_forms() -> None:
    from ekuiper_sdk.tools.cli import _vendor_options, build_parser
    parser = build_parser()
    opts = _vendor_options(parser.parse_args(["pack", "--platform", "x86_64", "d", "--vendor",
                                              "--platform", "aarch64,musllinux_1_2_x86_64"]))
    assert opts is not None
    assert opts.platforms == ("x86_64", "aarch64", "musllinux_1_2_x86_64")
    default = _vendor_options(parser.parse_args(["pack", "d", "--vendor"]))
    assert default is not None
    assert default.platforms == ("x86_64", "aarch64") and default.python_version == "3.12"
    assert _vendor_options(parser.parse_args(["pack", "d"])) is None


def test_the_init_projects_own_tests_pass(tmp_path: Path) -> None:
    plugin = init(tmp_path)
    # -p no:ekuiper_sdk: the project's tests need no fixture from the SDK's pytest plugin.
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:ekuiper_sdk",
                           "-p", "no:cacheprovider", str(plugin / "tests")],
                          cwd=plugin, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # 2 without ekuiper_sdk.testing (its pipeline test skips), 3 with it
    assert re.search(r"\b[23] passed", proc.stdout) and "failed" not in proc.stdout


def test_run_reads_the_manifest_as_validate_does(tmp_path: Path) -> None:
    """A second JSON file in the folder (settings, UI metadata) is not the manifest."""
    plugin = init(tmp_path)
    (plugin / "settings.json").write_text('{"colour": "blue"}')
    code, _, err = run("validate", str(plugin))
    assert code == 0, err
    code, out, err = run("run", str(plugin), "--count", "1")
    assert code == 0, err
    assert out.startswith("source ")
    assert "Traceback" not in err
