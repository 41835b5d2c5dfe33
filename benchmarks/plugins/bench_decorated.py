"""The "ours, decoded" sink in the decorator style: records arrive decoded, as its users get them.

The counting is the class plugin's (bench_plugin.py), so both measure the same work. A
plain class (not a Sink subclass) registered with ``@app.sink`` gets one instance per
running sink, with records decoded from JSON and an ack sent when ``collect`` returns.
"""

import os
from typing import Any, Dict

from bench_plugin import PAYLOAD, _Counter

from ekuiper_sdk import Context, Plugin

app = Plugin(os.environ.get("BENCH_PLUGIN", "bench"))


@app.sink("decoded")
class Decoded(_Counter):
    def configure(self, conf: Dict[str, Any]) -> None:
        self.setup(conf)

    def collect(self, ctx: Context, record: Dict[str, Any]) -> None:
        assert record["data"] == PAYLOAD
        self.tick()


if __name__ == "__main__":
    app.run()
