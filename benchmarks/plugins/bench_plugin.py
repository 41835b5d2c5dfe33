"""The benchmark plugin: the same plugin code for both SDKs, only the import differs.

``BENCH_SDK`` picks the SDK (``ours`` or ``official``); ``BENCH_PLUGIN`` and
``BENCH_FUNCTION`` name the plugin and its function (IPC paths are global, so every run
uses names of its own). Sink configurations carry ``count`` and ``resultFile``: the sink
writes how long its first ``count`` collects took, which is the figure measured.
"""

import json
import os
import time

if os.environ.get("BENCH_SDK") == "official":
    from ekuiper import Function, PluginConfig, Sink, Source, plugin
else:
    from ekuiper_sdk import Function, PluginConfig, Sink, Source, plugin

#: 64 bytes of text in every tuple.
PAYLOAD = "0123456789abcdef" * 4


class BenchSource(Source):
    """Emits ``count`` tuples as fast as ``emit`` takes them (0: until stopped)."""

    def configure(self, datasource, conf):
        self.count = int(conf.get("count", 0))
        self.interval = float(conf.get("interval", 0))
        self.running = True

    def open(self, ctx):
        i = 0
        count, interval, emit = self.count, self.interval, ctx.emit
        while self.running and (count <= 0 or i < count):
            emit({"seq": i, "data": PAYLOAD}, None)
            i += 1
            if interval:
                time.sleep(interval)
        while self.running:  # the host stops the rule when it has counted enough
            time.sleep(0.02)

    def close(self, ctx):
        self.running = False


class _Counter:
    """Counts collects and writes the time from the first to the ``count``-th to a file."""

    def setup(self, conf):
        self.count = int(conf.get("count", 0))
        self.result = conf.get("resultFile")
        self.ack = conf.get("requireAck") is True
        self.n = 0
        self.t0 = 0.0

    def tick(self):
        self.n += 1
        if self.n == 1:
            self.t0 = time.perf_counter()
        elif self.n == self.count and self.result:
            took = time.perf_counter() - self.t0
            with open(self.result + ".tmp", "w") as out:
                json.dump({"count": self.n, "seconds": took}, out)
            os.replace(self.result + ".tmp", self.result)


class BenchSink(Sink, _Counter):
    """The official-style sink: ``collect`` gets the frame's bytes."""

    def configure(self, conf):
        self.setup(conf)

    def collect(self, ctx, data):
        self.tick()
        if self.ack:
            ctx.ack_ok()


class DecodedSink(Sink, _Counter):
    """A sink that works on records decoded from JSON, as a plugin's user has them."""

    def configure(self, conf):
        self.setup(conf)
        from ekuiper_sdk.runtime.codec import loads

        self.loads = loads

    def collect(self, ctx, data):
        record = self.loads(data)
        assert record["data"] == PAYLOAD
        self.tick()
        if self.ack:
            ctx.ack_ok()


class BenchFunction(Function):
    """Reverses its first argument."""

    def validate(self, args):
        return ""

    def exec(self, args, ctx):
        return args[0][::-1]

    def is_aggregate(self):
        return False


sinks = {"bench": BenchSink}
if os.environ.get("BENCH_SDK") != "official":
    sinks["decoded"] = DecodedSink

if __name__ == "__main__":
    plugin.start(PluginConfig(os.environ["BENCH_PLUGIN"], {"bench": BenchSource}, sinks,
                              {os.environ.get("BENCH_FUNCTION", "benchfn"): BenchFunction}))
