"""A plugin for the supervision tests: symbols that end the worker process in many ways.

Its name and a prefix for its function names come from the environment
(``PLUGIN_NAME``, ``FUNC_PREFIX``), because IPC paths are global under /tmp.
"""

import ctypes
import os
import resource
import time
from typing import Any, Dict, List

from ekuiper_sdk import Context, Function, PluginConfig, Sink, Source, plugin


class Counter(Source):
    """Emits {"n": 1}, {"n": 2}, ... every ``interval`` s, counting on from ``ctx.state``.

    With ``die_at`` it ends the worker once, when it reaches that number, the way
    ``die_by`` says: ``exit`` (os._exit(3)) or ``memory`` (allocates until the address
    space limit it sets on its own process, ``memory_mib`` above its size, stops it).
    A marker file keeps it from dying twice.
    """

    def configure(self, datasource: str, conf: Dict[str, Any]) -> None:
        self.conf = conf
        self.interval = float(conf.get("interval", 0.01))

    def open(self, ctx: Context) -> None:
        n = int(ctx.state.get("n", 0))
        while True:
            n += 1
            if n == self.conf.get("die_at") and not os.path.exists(self.conf["marker"]):
                open(self.conf["marker"], "w").close()
                self.die()
            ctx.emit({"n": n, "pid": os.getpid()}, None)
            ctx.state["n"] = n  # after the emit: what eKuiper has is what is counted
            time.sleep(self.interval)

    def die(self) -> None:
        if self.conf.get("die_by") == "memory":
            with open("/proc/self/status") as status:
                size = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
            limit = (size << 10) + (int(self.conf.get("memory_mib", 64)) << 20)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            hog: List[bytearray] = []
            while True:
                hog.append(bytearray(16 << 20))
        os._exit(3)

    def close(self, ctx: Context) -> None:
        pass


class Bomb(Source):
    """Ends the worker while it is being configured, every time."""

    def configure(self, datasource: str, conf: Dict[str, Any]) -> None:
        os._exit(7)

    def open(self, ctx: Context) -> None:
        pass

    def close(self, ctx: Context) -> None:
        pass


class Recorder(Sink):
    """Appends every frame to ``record``; a frame holding ``exit`` ends the worker first,
    one holding ``sleep`` writes ``<record>.busy`` and sleeps a minute (to be killed), one
    holding ``hang`` never returns."""

    def configure(self, conf: Dict[str, Any]) -> None:
        self.record = str(conf["record"])

    def open(self, ctx: Context) -> None:
        pass

    def collect(self, ctx: Context, data: Any) -> None:
        if b'"exit"' in bytes(data):
            os._exit(3)
        if b'"hang"' in bytes(data):
            time.sleep(3600)
        if b'"sleep"' in bytes(data):
            open(self.record + ".busy", "w").close()
            time.sleep(60)
        with open(self.record, "ab") as out:
            out.write(bytes(data) + b"\n")

    def close(self, ctx: Context) -> None:
        pass


class Fragile(Function):
    """Upper-cases text; ``pid`` is the worker's pid; ``segv`` dereferences a NULL pointer;
    ``hang`` never returns."""

    def validate(self, args: List[Any]) -> str:
        return ""

    def exec(self, args: List[Any], ctx: Context) -> Any:
        if args[0] == "segv":
            ctypes.string_at(0)
        if args[0] == "pid":
            return os.getpid()
        if args[0] == "hang":
            time.sleep(3600)
        return str(args[0]).upper()

    def is_aggregate(self) -> bool:
        return False


if __name__ == "__main__":
    prefix = os.environ.get("FUNC_PREFIX", "")
    plugin.start(PluginConfig(os.environ["PLUGIN_NAME"],
                              sources={"counter": Counter, "bomb": Bomb},
                              sinks={"recorder": Recorder},
                              functions={prefix + "fragile": Fragile}, supervise=True))
