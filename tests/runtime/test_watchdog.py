"""Calls into plugin code that run past their limit: noticed, logged with every stack, healed.

Real plugin processes over real IPC (``tests/plugins/reliable``), as one process; the
supervised healing is in ``tests/runtime/supervision/test_supervisor.py``. The limit is
1 s (``EKUIPER_SDK_CALL_LIMIT``), so the watchdog looks every 0.5 s while calls run.
"""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Any, Callable

import pytest
from helpers import PLUGINS

from ekuiper_sdk.runtime import watchdog
from ekuiper_sdk.testing import FunctionError, HostError, PluginHost, wait_for

PLUGIN = PLUGINS / "reliable" / "reliable.py"
LIMIT_S = 1.0
ONE_PROCESS = {"EKUIPER_SDK_SUPERVISE": "0", watchdog.CALL_LIMIT_ENV: str(LIMIT_S)}


@pytest.fixture
def started(plugin_host_factory: Callable[..., PluginHost],
            unique_name: Callable[[], str]) -> tuple[PluginHost, str]:
    name = unique_name()
    host = plugin_host_factory(name, PLUGIN, env={"PLUGIN_NAME": name,
                                                  "FUNC_PREFIX": name + "_", **ONE_PROCESS})
    return host, name + "_"


def stuck_line(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{prefix}sleepy is stuck in reliable\.py:\d+ since \d+ s$")


def test_a_call_that_never_returns_leaves_later_calls_answered_at_once(
        started: tuple[PluginHost, str]) -> None:
    host, prefix = started
    fh = host.function(prefix + "sleepy")
    assert fh.call("warm") == "warm"
    began = time.monotonic()
    with pytest.raises(FunctionError) as first:
        fh.call("forever")
    # The stuck call itself is answered by the thread that took over (eKuiper still
    # waited for it), within the limit and one look.
    assert time.monotonic() - began <= LIMIT_S + 1.0
    assert stuck_line(prefix).match(str(first.value)), first.value
    for _ in range(3):
        began = time.monotonic()
        with pytest.raises(FunctionError, match=stuck_line(prefix)):
            fh.call("next")
        assert time.monotonic() - began < 0.5
    block = host.wait_output("is stuck: it has run for", timeout=5)
    assert f"function '{prefix}sleepy'" in block and "in reliable.py:" in block
    # One block: the stuck thread's stack first, naming the sleeping frame, then the others.
    text = "\n".join(host.output)
    assert text.count("is stuck: it has run for") == 1
    assert "(the stuck call), most recent call last:" in text
    assert re.search(r"reliable\.py\", line \d+, in exec\n\s+time\.sleep\(3600\)", text), text
    assert "Thread 'control'" in text
    # The plugin's other functions are untouched.
    assert host.function(prefix + "echo").call("x")["args"] == ["x"]


def test_a_call_that_returns_late_gives_the_function_back(
        started: tuple[PluginHost, str]) -> None:
    host, prefix = started
    fh = host.function(prefix + "sleepy")
    answers: list[Any] = []

    def nap() -> None:
        try:
            answers.append(fh.call("nap", 2.5))
        except FunctionError as exc:
            answers.append(exc)

    caller = threading.Thread(target=nap)
    caller.start()
    caller.join(10)
    assert isinstance(answers[0], FunctionError) and "is stuck in" in str(answers[0])
    # Once the nap is over, the function answers again, from the thread that took over.
    host.wait_output("returned after", timeout=5)
    assert fh.call("again") == "again"
    assert fh.call("and again") == "and again"
    line = next(line for line in host.output if "returned after" in line)
    assert re.search(r"returned after 2\.\d s; it was stuck in reliable\.py:\d+", line), line


def test_a_collect_that_never_returns_is_logged_with_its_stack(
        started: tuple[PluginHost, str], tmp_path: Any) -> None:
    host, _prefix = started
    sink = host.start_sink("recorder", "r1", config={"record": str(tmp_path / "out.txt")})
    sink.send(b'{"a": 1}')
    sink.send(b'{"hang": 1}')
    block = host.wait_output("is stuck: it has run for", timeout=LIMIT_S + 3)
    assert "sink 'recorder' (rule 'r1'" in block and "it is left to return" in block
    text = "\n".join(host.output)
    assert re.search(r"reliable\.py\", line \d+, in collect\n\s+time\.sleep\(3600\)", text)
    assert (tmp_path / "out.txt").read_text() == '{"a": 1}\n'


def test_an_idle_plugin_has_no_watchdog_thread_and_a_quiet_one_sleeps(
        started: tuple[PluginHost, str]) -> None:
    host, prefix = started
    tasks = f"/proc/{host.pid}/task"
    fh = host.function(prefix + "sleepy")
    assert fh.is_aggregate() is False  # the function serves; no call marked yet
    before_call = set(os.listdir(tasks))
    assert fh.call("one") == "one"
    wait_for(lambda: set(os.listdir(tasks)) - before_call, timeout=2)
    (watchdog_task,) = set(os.listdir(tasks)) - before_call  # started by the first call

    def switches() -> int:
        with open(f"{tasks}/{watchdog_task}/status") as status:
            return sum(int(line.split()[1]) for line in status if "ctxt_switches" in line)

    time.sleep(2 * watchdog.MAX_LOOK_S)  # disarmed at the first look with no call in flight
    quiet = switches()
    time.sleep(2.0)
    assert switches() == quiet  # parked with no timeout: never woken while idle
    assert fh.call("two") == "two"  # armed again by the next call
    wait_for(lambda: switches() > quiet, timeout=2)


def test_a_configure_that_never_returns_is_refused_and_logged_with_its_stack(
        started: tuple[PluginHost, str], tmp_path: Any) -> None:
    host, _prefix = started
    with pytest.raises(HostError, match="configure did not return within 5 s"):
        host.start_source("counter", "r1", config={"hang_configure": True,
                                                   "record": str(tmp_path / "c.txt")})
    block = host.wait_output("configure is stuck: it did not return within 5 s", timeout=2)
    assert "in reliable.py:" in block
    text = "\n".join(host.output)
    assert re.search(r"reliable\.py\", line \d+, in configure\n\s+time\.sleep\(3600\)", text)


def test_a_symbols_own_limit_wins_over_the_plugins(
        plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
        tmp_path: Any) -> None:
    # The decorated plugin sets call_limit=60 on "slow" and the plugin's 1 s otherwise.
    name = unique_name()
    plugin = tmp_path / "limits.py"
    plugin.write_text(
        "import os, time\n"
        "from ekuiper_sdk import Plugin\n"
        "app = Plugin(os.environ['PLUGIN_NAME'], call_limit=1)\n"
        "@app.function(os.environ['PLUGIN_NAME'] + '_slow', call_limit=60)\n"
        "def slow(s: float) -> float:\n"
        "    time.sleep(s)\n"
        "    return s\n"
        "@app.function(os.environ['PLUGIN_NAME'] + '_quick')\n"
        "def quick(s: float) -> float:\n"
        "    time.sleep(s)\n"
        "    return s\n"
        "app.run()\n")
    host = plugin_host_factory(name, plugin, env={"PLUGIN_NAME": name,
                                                  "EKUIPER_SDK_SUPERVISE": "0"})
    assert host.function(name + "_slow").call(2.5) == 2.5  # past the plugin's 1 s: fine
    with pytest.raises(FunctionError, match=rf"^{name}_quick is stuck in limits\.py:\d+"):
        host.function(name + "_quick").call(2.5)
