"""A plugin for the reliability tests: symbols that flood, fail, block and record.

Its name and a prefix for its function names come from the environment
(``PLUGIN_NAME``, ``FUNC_PREFIX``), because IPC paths are global under /tmp and every
test needs names of its own. Files it records to are named in each symbol's config.
"""

import json
import math
import os
import threading
import time
from typing import Any, Dict, List

from ekuiper_sdk import Context, Function, PluginConfig, SendTimeout, Sink, Source, plugin


def resident_kib() -> int:
    """The process's resident memory now (ru_maxrss would include the forking parent's)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")


class Counter(Source):
    """Emits {"n": 1}, {"n": 2}, ... as fast as it can (or every ``interval`` s)."""

    def configure(self, datasource: str, conf: Dict[str, Any]) -> None:
        if conf.get("fail_configure"):
            raise ValueError("the counter refuses this configuration")
        if conf.get("hang_configure"):
            time.sleep(3600)
        self.interval = float(conf.get("interval", 0))
        self.record = str(conf["record"])
        self.stop_flag = threading.Event()

    def open(self, ctx: Context) -> None:
        append(self.record, "open")
        logger = ctx.get_logger()
        logger.info("counting for %s", ctx.get_rule_id())
        append(self.record, f"logger: {type(logger).__module__}.{type(logger).__name__}")
        n = 0
        while not self.stop_flag.is_set():  # ends by close(), or by emit raising after stop
            n += 1
            ctx.emit({"n": n}, {"source": "counter"})
            if self.interval:
                time.sleep(self.interval)

    def close(self, ctx: Context) -> None:
        append(self.record, "close")
        self.stop_flag.set()


class Flood(Source):
    """Emits large tuples without pause; records what happened when eKuiper stops reading."""

    def configure(self, datasource: str, conf: Dict[str, Any]) -> None:
        self.record = str(conf["record"])
        self.payload = "x" * int(conf.get("size", 65536))

    def open(self, ctx: Context) -> None:
        sent = 0
        try:
            while True:
                ctx.emit({"payload": self.payload, "n": sent})
                sent += 1
        except SendTimeout as exc:
            append(self.record, json.dumps({"sent": sent, "error": str(exc),
                                            "rss_kib": resident_kib()}))


class Odd(Source):
    """Emits values that need the JSON conversion rules, then one that has no JSON form."""

    def configure(self, datasource: str, conf: Dict[str, Any]) -> None:
        self.record = str(conf["record"])

    def open(self, ctx: Context) -> None:
        ctx.emit({"nan": math.nan, "inf": -math.inf, "raw": b"\x01\x02", 7: "int key",
                  "set": {2, 1}, "tuple": (1, 2)})
        try:
            ctx.emit({"bad": object()})
        except Exception as exc:  # noqa: BLE001 - recorded for the test to check
            append(self.record, f"{type(exc).__name__}: {exc}")
        ctx.emit({"after": True})


class Stuck(Source):
    """A source whose open blocks forever, whatever close does."""

    def open(self, ctx: Context) -> None:
        ctx.emit({"stuck": True})
        threading.Event().wait()


class Crashy(Source):
    """A source whose open raises at once."""

    def open(self, ctx: Context) -> None:
        raise RuntimeError("open exploded")


class Recorder(Sink):
    """Appends every frame to ``record``; fails frames that contain "fail"; can be slow."""

    def configure(self, conf: Dict[str, Any]) -> None:
        if conf.get("fail_configure"):
            raise KeyError("missing setting 'url'")
        self.record = str(conf["record"])
        self.delay = float(conf.get("delay", 0))
        self.explicit_ack = bool(conf.get("explicit_ack"))
        self.fail_close = bool(conf.get("fail_close"))

    def collect(self, ctx: Context, data: Any) -> None:
        if self.delay:
            time.sleep(self.delay)
        text = data.decode()
        if "hang" in text:
            time.sleep(3600)
        if "fail" in text:
            raise IOError(f"cannot write {text}")
        append(self.record, text)
        if self.explicit_ack:
            ctx.ack_ok()

    def close(self, ctx: Context) -> None:
        append(self.record, "closed")
        if self.fail_close:
            raise RuntimeError("close exploded")


class Echo(Function):
    def exec(self, args: List[Any], ctx: Context) -> Any:
        return {"args": args, "rule": ctx.get_rule_id(), "ctx": id(ctx)}


class Boom(Function):
    def exec(self, args: List[Any], ctx: Context) -> Any:
        raise ValueError(f"bad input {args[0]!r}")


class Sleepy(Function):
    """Returns its argument; sleeps for good on ``forever`` (a call that never returns),
    or ``seconds`` s on ``nap``."""

    def exec(self, args: List[Any], ctx: Context) -> Any:
        if args[0] == "forever":
            time.sleep(3600)
        if args[0] == "nap":
            time.sleep(float(args[1]))
        return args[0]


class Weird(Function):
    """Returns what it is asked for by name: values that need conversion, or none at all."""

    def exec(self, args: List[Any], ctx: Context) -> Any:
        return {"nan": math.nan, "bytes": b"hi", "object": object()}.get(args[0])


if __name__ == "__main__":
    prefix = os.environ.get("FUNC_PREFIX", "")
    plugin.start(PluginConfig(
        os.environ["PLUGIN_NAME"],
        {"counter": Counter, "flood": Flood, "odd": Odd, "crashy": Crashy,
         "stuck": Stuck},
        {"recorder": Recorder},
        {prefix + "echo": Echo, prefix + "boom": Boom, prefix + "weird": Weird,
         prefix + "sleepy": Sleepy}))
