"""A source that emits a small JSON record every ``interval`` seconds."""

import time
from typing import Any, Dict

from ekuiper_sdk import Context, Source


class PyJson(Source):
    def __init__(self) -> None:
        self.running = True
        self.interval = 0.2
        self.data: Dict[str, Any] = {"name": "pyjson", "value": 2021}

    def configure(self, datasource: str, conf: Dict[str, Any]) -> None:
        self.interval = float(conf.get("interval", self.interval))
        if datasource:
            self.data["datasource"] = datasource

    def open(self, ctx: Context) -> None:
        ctx.get_logger().info("emitting every %s s", self.interval)
        count = 0
        while self.running:
            count += 1
            ctx.emit(dict(self.data, count=count), None)
            time.sleep(self.interval)

    def close(self, ctx: Context) -> None:
        self.running = False
