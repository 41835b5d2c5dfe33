"""Async plugin code run from the runtime's threads: a stuck coroutine is found where it
is suspended, not where the runtime's thread waits for it (real process, real IPC)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import pytest
from helpers import PLUGINS

from ekuiper_sdk.testing import FunctionError, PluginHost


def test_a_stuck_async_function_is_named_at_its_await(
        plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
        tmp_path: Path) -> None:
    name = unique_name()
    suffix = "_" + name
    host = plugin_host_factory(name, PLUGINS / "app_style" / "main.py", env={
        "PLUGIN_NAME": name, "SUFFIX": suffix, "MARKS": str(tmp_path),
        "EKUIPER_SDK_SUPERVISE": "0", "EKUIPER_SDK_CALL_LIMIT": "1"})
    never = host.function("never" + suffix)
    with pytest.raises(FunctionError,
                       match=rf"^never{suffix} is stuck in main\.py:\d+ since \d+ s$"):
        never.call(1)
    # The other async function of the plugin still answers (a loop of its own).
    assert host.function("concat" + suffix).call("a", "b") == "ab"
    block = host.wait_output("is stuck: it has run for", timeout=5)
    assert re.search(r"in main\.py:\d+;", block)
    text = "\n".join(host.output)
    assert "waiting for a coroutine, suspended at, most recent await last:" in text
    assert re.search(r"main\.py\", line \d+, in never", text)
