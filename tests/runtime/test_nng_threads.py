"""A plugin process runs nng's thread pools at their minimum, and the switch restores them."""

from __future__ import annotations

import collections
import os
import sys
from pathlib import Path
from typing import Callable

import pytest

from ekuiper_sdk.runtime import channels
from ekuiper_sdk.testing import PluginHost

PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "app_style" / "main.py"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="thread names are read from /proc")


def nng_threads(pid: int) -> collections.Counter[str]:
    """How many threads of each nng pool the process runs, by the names nng gives them."""
    names: collections.Counter[str] = collections.Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue  # the thread ended meanwhile
        if name.startswith("nng:"):
            names[name] += 1
    return names


def started_plugin(factory: Callable[..., PluginHost], name: str, suffix: str,
                   env: dict[str, str]) -> collections.Counter[str]:
    host = factory(name, PLUGIN, env={"PLUGIN_NAME": name, "SUFFIX": suffix, **env})
    sink = host.start_sink("each" + suffix, name + "_r")
    sink.send({"n": 1})  # every pool has started once a frame went through
    host.wait_output("GOT", timeout=10)
    assert host.pid is not None
    return nng_threads(host.pid)


def test_a_plugin_runs_nngs_minimum_thread_pools(plugin_host_factory: Callable[..., PluginHost],
                                                  unique_name: Callable[..., str]) -> None:
    name = unique_name()
    threads = started_plugin(plugin_host_factory, name, "_" + name, {})
    assert threads["nng:task"] == channels.NNG_THREADS["TASK"]
    assert threads["nng:aio:expire"] == channels.NNG_THREADS["EXPIRE"]
    assert threads["nng:resolver"] <= channels.NNG_THREADS["RESOLVER"]


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="nng's own sizes are the minimum on 1 core")
def test_the_switch_leaves_nngs_own_sizes(plugin_host_factory: Callable[..., PluginHost],
                                          unique_name: Callable[..., str]) -> None:
    name = unique_name()
    threads = started_plugin(plugin_host_factory, name, "_" + name,
                             {channels.NNG_THREADS_ENV: "0"})
    # nng's default is two task threads per core.
    assert threads["nng:task"] > channels.NNG_THREADS["TASK"]
