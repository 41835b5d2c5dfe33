"""Which part a process plays (runtime/roles.py): decided once, from the environment and
the plugin's ``supervise`` option."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ekuiper_sdk.runtime.plugin import PluginConfig
from ekuiper_sdk.runtime.roles import SUPERVISE_ENV, WORKER_ENV, Part, decide


@pytest.fixture
def script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    main = tmp_path / "main.py"
    main.write_text("")
    monkeypatch.delenv(WORKER_ENV, raising=False)
    monkeypatch.delenv(SUPERVISE_ENV, raising=False)
    # As when eKuiper starts the script (pytest's own argv would name pytest).
    monkeypatch.setattr(sys, "argv", [str(main)])
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, str(main)], raising=False)
    return [str(main), "{}"]


@pytest.mark.parametrize("supervise, env, part", [
    (False, None, Part.ONE_PROCESS),
    (True, None, Part.SUPERVISOR),
    (True, "0", Part.ONE_PROCESS),
    (False, "1", Part.SUPERVISOR),
])
def test_the_option_and_the_environment_decide(script: list[str], supervise: bool,
                                               env: str | None, part: Part,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    if env is not None:
        monkeypatch.setenv(SUPERVISE_ENV, env)
    decision = decide(PluginConfig("demo", supervise=supervise), script)
    assert decision.part is part
    if part is Part.SUPERVISOR:
        assert decision.command[0] == sys.executable and decision.command[-1] == script[0]


def test_a_worker_takes_its_channel_out_of_the_environment(
        script: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WORKER_ENV, "abstract://demo")
    decision = decide(PluginConfig("demo", supervise=True), script)
    assert (decision.part, decision.worker_url) == (Part.WORKER, "abstract://demo")
    # A process the plugin's code starts is not taken for a worker too.
    assert decide(PluginConfig("demo"), script).part is Part.ONE_PROCESS


def test_supervised_without_a_script_to_run_again_is_one_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKER_ENV, raising=False)
    monkeypatch.setattr(sys, "argv", ["-c"])
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, "-c", "..."], raising=False)
    assert decide(PluginConfig("demo", supervise=True), ["-c"]).part is Part.ONE_PROCESS
