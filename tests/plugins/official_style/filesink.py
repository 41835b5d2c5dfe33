import json
from typing import Any

from ekuiper import Context, Sink


class FileSink(Sink):
    """Appends every frame as one line to the file named by the `path` property."""

    def __init__(self):
        self.path = None
        self.require_ack = False

    def configure(self, conf: dict):
        print('configure file sink', conf)
        self.path = conf.get("path")
        self.require_ack = conf.get("requireAck", False)

    def open(self, ctx: Context):
        print('open file sink: ', ctx.get_rule_id())

    def collect(self, ctx: Context, data: Any):
        print('receive: ', data)
        if self.path:
            with open(self.path, "ab") as f:
                f.write(data + b"\n")
        # only add ack when using with requireAck in the rule
        if self.require_ack:
            item = json.loads(data)
            if isinstance(item, dict) and "fail" in item:
                ctx.ack_error(item["fail"])
            else:
                ctx.ack_ok()

    def close(self, ctx: Context):
        print("closing file sink")
