import json
from typing import Any

from ekuiper import Context, Sink


class FileSink(Sink):
    """Appends every frame as one line to the file named by the `path` property."""

    def __init__(self):
        self.path = None
        self.require_ack = False

    def configure(self, conf: dict):
        print('file sink configured with', conf)
        self.path = conf.get("path")
        self.require_ack = conf.get("requireAck", False)

    def open(self, ctx: Context):
        print('file sink opened for rule', ctx.get_rule_id())

    def collect(self, ctx: Context, data: Any):
        print('file sink got', len(data), 'bytes')
        if self.path:
            with open(self.path, "ab") as f:
                f.write(data + b"\n")
        # eKuiper reads acks only when the rule sets requireAck
        if self.require_ack:
            item = json.loads(data)
            if isinstance(item, dict) and "fail" in item:
                ctx.ack_error(item["fail"])
            else:
                ctx.ack_ok()

    def close(self, ctx: Context):
        print("closing file sink")
