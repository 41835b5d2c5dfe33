"""The plugin that ``python -m benchmarks --ekuiper URL`` installs into a real eKuiper.

One file for both SDKs, only the import differs; the benchmark installs it as
``<name>.py`` and names the SDK in ``<name>``: a name with ``_official`` in it runs on the
``ekuiper`` package, anything else on ekuiper-sdk (supervised when the name has
``_supervised`` in it). Symbol names derive from the plugin name, since a
server holds every plugin's symbols in one namespace: ``<name>_src``, ``<name>_sink``,
``<name>_fn``, and on ekuiper-sdk ``<name>_each`` (a sink taking decoded records).

The source's configuration (``sources/<name>_src.yaml``) has ``rate`` (tuples a second,
paced in bursts every 10 ms; 0: as fast as ``emit`` takes them) and ``idle`` (emit
nothing, ever).
"""

import os
import threading
import time

NAME = os.path.splitext(os.path.basename(__file__))[0]

if "_official" in NAME:
    from ekuiper import Function, PluginConfig, Sink, Source, plugin
else:
    from ekuiper_sdk import Function, PluginConfig, Sink, Source, plugin

#: 64 bytes of text in every tuple, as in the Go-host benchmark.
PAYLOAD = "0123456789abcdef" * 4


class BenchSource(Source):
    def configure(self, datasource, conf):
        self.rate = int(conf.get("rate", 0))
        self.idle = bool(conf.get("idle", False))
        self.stopped = threading.Event()

    def open(self, ctx):
        if self.idle:
            self.stopped.wait()
            return
        emit, i = ctx.emit, 0
        burst = max(1, self.rate // 100) if self.rate else 1
        due = time.monotonic()
        while not self.stopped.is_set():
            for _ in range(burst):
                emit({"seq": i, "data": PAYLOAD}, None)
                i += 1
            if self.rate:
                due += 0.01
                late = due - time.monotonic()
                if late > 0:
                    time.sleep(late)
                else:
                    due = time.monotonic()

    def close(self, ctx):
        self.stopped.set()


class BenchSink(Sink):
    """Takes the frame's bytes, as an official-style sink does."""

    def configure(self, conf):
        pass

    def open(self, ctx):
        pass

    def collect(self, ctx, data):
        pass

    def close(self, ctx):
        pass


class EachSink:
    """ekuiper-sdk's decoded records (``records="each"``): one decoded record per call."""

    def collect(self, ctx, record):
        pass


class BenchFunction(Function):
    def validate(self, args):
        return ""

    def exec(self, args, ctx):
        return args[0][::-1]

    def is_aggregate(self):
        return False


if __name__ == "__main__":
    if "_official" in NAME:
        plugin.start(PluginConfig(NAME, {NAME + "_src": BenchSource},
                                  {NAME + "_sink": BenchSink}, {NAME + "_fn": BenchFunction}))
    else:
        from ekuiper_sdk import Plugin

        # The scale benchmark's --supervised copies: a worker process under a supervisor.
        app = Plugin(NAME, supervise="_supervised" in NAME)
        app.source(NAME + "_src")(BenchSource)
        app.sink(NAME + "_sink")(BenchSink)
        app.sink(NAME + "_each", records="each")(EachSink)
        app.function(NAME + "_fn")(BenchFunction)
        app.run()
