"""A plugin for the record and replay tests: a source of numbered rows, a function, and a
sink that keeps every frame it gets in a file and rejects a row whose "n" is no number,
and an aggregate.
Every symbol is named after the plugin, which has a unique name (sockets are global)."""

from __future__ import annotations

import json
from pathlib import Path

from .pack_helpers import unique_name

# A sink that keeps every frame it gets in a file (one line each) and rejects a row whose
# "n" is not a number; a source of numbered rows; a function.
PLUGIN = '''
import json, threading
from ekuiper_sdk import Function, PluginConfig, Sink, Source, plugin

class Tick(Source):
    def configure(self, datasource, conf):
        self.conf, self.datasource, self.stopped = conf, datasource, threading.Event()
    def open(self, ctx):
        n = 0
        while not self.stopped.is_set():
            n += 1
            ctx.emit({"n": n, "ds": self.datasource, "step": self.conf.get("step")}, None)
            self.stopped.wait(0.01)
    def close(self, ctx):
        self.stopped.set()

class Keep(Sink):
    def configure(self, conf):
        self.path, self.conf = conf["path"], conf
    def collect(self, ctx, data):
        with open(self.path, "ab") as f:
            f.write(data + b"\\n")
        value = json.loads(data)
        rows = value if isinstance(value, list) else [value]
        for row in rows:
            row = row[0] if isinstance(row, list) else row
            if not isinstance(row.get("n"), int):
                raise ValueError(f"n must be a number, got {row.get('n')!r}")

class Up(Function):
    def validate(self, args):
        return ""
    def exec(self, args, ctx):
        return str(args[0]).upper()
    def is_aggregate(self):
        return False

class Total(Function):
    def validate(self, args):
        return ""
    def exec(self, args, ctx):
        return sum(args[0] or [])
    def is_aggregate(self):
        return True

if __name__ == "__main__":
    plugin.start(PluginConfig(NAME, {NAME + "_tick": Tick}, {NAME + "_keep": Keep},
                              {NAME + "_up": Up, NAME + "_total": Total}))
'''


def make_plugin(tmp_path: Path, prefix: str = "rp") -> tuple[Path, str]:
    name = unique_name(prefix)
    folder = tmp_path / name
    (folder / "sources").mkdir(parents=True)
    (folder / "main.py").write_text(f"NAME = {name!r}\n" + PLUGIN)
    (folder / f"{name}.json").write_text(json.dumps({
        "version": "1.0.0", "language": "python", "executable": "main.py",
        "sources": [f"{name}_tick"], "sinks": [f"{name}_keep"],
        "functions": [f"{name}_up", f"{name}_total"]}))
    (folder / "sources" / f"{name}_tick.yaml").write_text(
        "default:\n  step: 1\nfast:\n  step: 5\n")
    return folder, name
