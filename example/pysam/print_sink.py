"""A sink that logs every frame it receives."""

from typing import Any, Dict

from ekuiper_sdk import Context, Sink


class PrintSink(Sink):
    def configure(self, conf: Dict[str, Any]) -> None:
        self.prefix = str(conf.get("prefix", "receive"))

    def collect(self, ctx: Context, data: Any) -> None:
        text = data.decode() if isinstance(data, bytes) else data
        ctx.get_logger().info("%s: %s", self.prefix, text)
        ctx.ack_ok()  # sent only when the rule sets requireAck
