"""The pysam_async example plugin, written with decorators and async code only.

- ``pyjson_async``: a source that emits a numbered record every ``interval`` seconds and
  remembers its count in ``ctx.state``, so a restarted plugin carries on where it was;
- ``print_async``: a sink that logs each record it receives (decoded, one per call);
- ``revert2``: a function that reverses a string; ``avg2``: an aggregate function that
  averages a group's values.

Run it under the built-in host with ``ekuiper-plugin run example/pysam_async``.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Dict, List, Optional

from ekuiper_sdk import Context, Plugin

app = Plugin("pysam_async")


@app.source("pyjson_async")
async def pyjson_async(ctx: Context, datasource: str,
                       conf: Dict[str, Any]) -> AsyncIterator[Dict[str, Any]]:
    interval = float(conf.get("interval", 0.2))
    count: int = ctx.state.get("count", 0)
    ctx.logger.info("emitting every %s s from count %d", interval, count)
    try:
        while True:
            count += 1
            yield {"name": "pyjson", "value": 2021, "count": count,
                   "datasource": datasource}
            # Saved after the record went out: after a restart, nothing is skipped.
            ctx.state["count"] = count
            await asyncio.sleep(interval)
    finally:
        ctx.logger.info("stopped at count %d", count)


@app.sink("print_async")
async def print_async(ctx: Context, record: Any) -> None:
    prefix = str(ctx.config.get("prefix", "receive"))
    ctx.logger.info("%s: %s", prefix, record)
    await asyncio.sleep(0)  # where a real sink would await its client's write


@app.function("revert2")
async def revert2(s: str) -> str:
    return str(s)[::-1]


@app.function("avg2", aggregate=True)
async def avg2(values: List[Optional[float]]) -> Optional[float]:
    numbers = [float(v) for v in values if v is not None]
    return sum(numbers) / len(numbers) if numbers else None


if __name__ == "__main__":
    app.run()
