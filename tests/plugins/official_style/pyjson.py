import logging
import time

from ekuiper import Context, Source


class PyJson(Source):
    """Emits {"name", "seq", "datasource", "tag"} with meta {"seq"}: what configure got shows."""

    def __init__(self):
        self.running = True
        self.datasource = None
        self.conf = {}

    def configure(self, datasource: str, conf: dict):
        logging.info("pyjson source: datasource {!r}, conf {}".format(datasource, conf))
        self.datasource = datasource
        self.conf = conf

    def open(self, ctx: Context):
        print("pyjson source starts emitting")
        interval = self.conf.get("interval", 0.05)
        if self.conf.get("emit_error"):
            ctx.emit_error("bad reading")
        seq = 0
        while self.running:
            data = {"name": self.conf.get("name", "pyjson"), "seq": seq,
                    "datasource": self.datasource, "tag": self.conf.get("tag")}
            if self.conf.get("nan"):
                data["x"] = float("nan")
            ctx.emit(data, {"seq": seq})
            seq += 1
            if interval:
                time.sleep(interval)
        print("pyjson source stopped emitting")

    def close(self, ctx: Context):
        print("pyjson source asked to close")
        self.running = False
