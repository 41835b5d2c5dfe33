"""The runtime makes stdout and stderr line-buffered itself: eKuiper starts a conda plugin
without ``python -u``, and a plugin's ``print`` must not wait in a pipe's buffer."""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from typing import Callable

import pytest

from ekuiper_sdk.testing import PluginHost, wait_for

PLUGIN = '''
import sys, threading
from ekuiper_sdk import Function, PluginConfig, plugin

class Echo(Function):
    def validate(self, args):
        return ""
    def exec(self, args, ctx):
        print("printed", args[0])
        sys.stderr.write("written %s\\n" % args[0])
        return args[0]
    def is_aggregate(self):
        return False

plugin.start(PluginConfig(sys.argv[0].split("/")[-1][:-3], {}, {}, {"FUNC": Echo}))
'''


def test_prints_reach_the_host_while_the_plugin_runs(
        plugin_host_factory: Callable[..., PluginHost], unique_name: Callable[[], str],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    name, func = unique_name(), unique_name()
    script = tmp_path / f"{name}.py"
    script.write_text(PLUGIN.replace("FUNC", func))
    # The host runs `<python> -u main.py arg`; this interpreter drops the -u, as a conda
    # launch by eKuiper has none.
    python = tmp_path / "python-without-u"
    python.write_text(f'#!/bin/sh\nshift\nexec {sys.executable} "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    host = plugin_host_factory(name, script, python=str(python))
    assert host.function(func).call("one") == "one"
    wait_for(lambda: "printed one" in host.output and "written one" in host.output)
    assert host.process is not None and host.process.poll() is None
