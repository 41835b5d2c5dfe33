"""The h26demo plugin for eKuiper: a source, a function and a sink.

eKuiper starts this file as `python -u main.py '{"sendTimeout": 1000}'` from the plugin
folder. `ekuiper-plugin run .` runs it under a built-in host and shows what flows.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, List

from ekuiper_sdk import Context, Function, PluginConfig, Sink, Source, plugin


@dataclass
class CounterConf:
    interval: int = field(default=1000, metadata={"hint": "Milliseconds between two tuples"})


class Counter(Source):
    """Emits {"n": 1, "text": "hello 1"}, {"n": 2, ...} every `interval` milliseconds."""

    # configure receives its configuration as a CounterConf, checked and converted; `pack`
    # describes it in sources/h26demo_counter.json for eKuiper's UI.
    config_type = CounterConf

    def __init__(self) -> None:
        self.interval = 1.0
        self.prefix = "hello"
        self.stopped = threading.Event()

    def configure(self, datasource: str, conf: CounterConf) -> None:
        # conf is the section of sources/h26demo_counter.yaml the stream picks (CONF_KEY), or default.
        self.interval = conf.interval / 1000.0
        self.prefix = datasource or "hello"

    def open(self, ctx: Context) -> None:
        n = 0
        while not self.stopped.is_set():
            n += 1
            ctx.emit({"n": n, "text": f"{self.prefix} {n}"}, None)
            self.stopped.wait(self.interval)

    def close(self, ctx: Context) -> None:
        self.stopped.set()


class Upper(Function):
    """h26demo_upper(text): the text in upper case."""

    def validate(self, args: List[Any]) -> str:
        return "" if len(args) == 1 else "h26demo_upper takes exactly one argument"

    def exec(self, args: List[Any], ctx: Context) -> Any:
        return str(args[0]).upper()

    def is_aggregate(self) -> bool:
        return False


@dataclass
class PrinterConf:
    prefix: str = field(default="", metadata={"hint": "Text written before each frame"})


class Printer(Sink):
    """Logs every frame the rule sends (JSON bytes by default)."""

    config_type = PrinterConf

    def __init__(self) -> None:
        self.prefix = ""

    def configure(self, conf: PrinterConf) -> None:
        # From the rule's action, e.g. {"h26demo_print": {"prefix": "> "}}.
        self.prefix = conf.prefix

    def collect(self, ctx: Context, data: Any) -> None:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        ctx.get_logger().info("%s%s", self.prefix, text)


CONFIG = PluginConfig("h26demo", {"h26demo_counter": Counter}, {"h26demo_print": Printer}, {"h26demo_upper": Upper})

if __name__ == "__main__":
    plugin.start(CONFIG)
