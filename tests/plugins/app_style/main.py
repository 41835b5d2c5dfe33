"""A test plugin written with the decorator API, covering each kind of callable.

Names come from the environment so that every test run has sockets of its own:
PLUGIN_NAME is the plugin's name and SUFFIX ends every symbol name (function sockets are
named after the function alone). MARKS is a folder where sources record that their
``finally`` ran.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Iterator, List, Tuple

from ekuiper_sdk import Context, Plugin

SUFFIX = os.environ.get("SUFFIX", "")
MARKS = Path(os.environ.get("MARKS", "."))
app = Plugin(os.environ.get("PLUGIN_NAME", "app_style"))


def mark(name: str) -> None:
    (MARKS / name).write_text("done")


@app.source("sync_gen" + SUFFIX)
def sync_gen(ctx: Context, datasource: str, conf: Dict[str, Any]) -> Iterator[Dict[str, Any]]:
    n = 0
    try:
        while True:
            n += 1
            yield {"n": n, "datasource": datasource, "conf": conf}
            time.sleep(0.02)
    finally:
        mark(f"sync_gen_{ctx.rule_id}")


@app.source("async_gen" + SUFFIX)
async def async_gen(ctx: Context, datasource: str,
                    conf: Dict[str, Any]) -> AsyncIterator[Tuple[Dict[str, Any], Dict[str, Any]]]:
    n = 0
    try:
        while True:
            n += 1
            yield {"n": n}, {"topic": datasource}
            await asyncio.sleep(float(conf.get("sleep", 0.02)))
    finally:
        mark(f"async_gen_{ctx.rule_id}")


@app.source("finite" + SUFFIX)
async def finite(ctx: Context, datasource: str, conf: Dict[str, Any]) -> AsyncIterator[Any]:
    for i in range(int(conf.get("count", 3))):
        yield {"i": i}
    yield None  # skipped
    yield ["not", "a", "dict"]  # logged and dropped


@app.source("failing" + SUFFIX)
def failing(ctx: Context, datasource: str, conf: Dict[str, Any]) -> Iterator[Dict[str, Any]]:
    yield {"ok": True}
    raise ValueError("sensor unplugged")


@app.source("emitter" + SUFFIX)
def emitter(ctx: Context, datasource: str, conf: Dict[str, Any]) -> None:
    n = 0
    while True:  # ends with SymbolStopped from ctx.emit once the rule stops
        n += 1
        ctx.emit({"n": n}, {"by": "emit"})
        time.sleep(0.02)


@app.source("resume" + SUFFIX)
async def resume(ctx: Context, datasource: str, conf: Dict[str, Any]) -> AsyncIterator[Any]:
    offset = ctx.state.get("offset", 0)
    while True:
        offset += 1
        yield {"offset": offset, "pid": os.getpid()}
        ctx.state["offset"] = offset
        await asyncio.sleep(0.01)


def report(ctx: Context, what: str, value: Any) -> None:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    ctx.logger.info("GOT %s %s %s", ctx.rule_id, what, json.dumps(text, sort_keys=True))


@app.sink("each" + SUFFIX)
def each(ctx: Context, record: Any) -> None:
    if isinstance(record, dict) and record.get("fail"):
        raise RuntimeError(f"cannot write {record['fail']}")
    if isinstance(record, dict) and record.get("nack"):
        ctx.ack_error("refused by the sink")
    report(ctx, "each", record)


@app.sink("batch" + SUFFIX, records="list")
async def batch(ctx: Context, records: List[Any]) -> None:
    await asyncio.sleep(0)
    report(ctx, "list", records)


@app.sink("raw" + SUFFIX, records="bytes")
def raw(ctx: Context, data: bytes) -> None:
    report(ctx, "bytes", data)


@app.sink("slow" + SUFFIX)
def slow(ctx: Context, record: Any) -> None:
    time.sleep(float(record.get("sleep", 2)))  # blocking code in a sink
    report(ctx, "slow", record)


@app.sink("klass" + SUFFIX)
class Klass:
    """A plain class with async parts: open connects, collect writes, close disconnects."""

    def configure(self, conf: Dict[str, Any]) -> None:
        self.prefix = str(conf.get("prefix", ""))

    async def open(self, ctx: Context) -> None:
        self.lines: List[str] = []
        await asyncio.sleep(0)

    async def collect(self, ctx: Context, record: Any) -> None:
        report(ctx, "klass", self.prefix + json.dumps(record, sort_keys=True))

    def close(self, ctx: Context) -> None:
        ctx.logger.info("GOT %s klass-closed", ctx.rule_id)


@app.function("rev" + SUFFIX)
def rev(s: str) -> str:
    return s[::-1]


@app.function("clamp" + SUFFIX)
def clamp(ctx: Context, x: float, low: float = 0.0, high: float = 1.0) -> Any:
    return {"value": min(max(x, low), high), "rule": ctx.rule_id, "funcId": ctx.func_id}


@app.function("concat" + SUFFIX)
async def concat(first: str, *rest: str) -> str:
    await asyncio.sleep(0)
    return first + "".join(rest)


@app.function("total" + SUFFIX, aggregate=True)
def total(values: List[float]) -> float:
    return sum(values)


@app.function("never" + SUFFIX)
async def never(x: Any) -> Any:
    await asyncio.sleep(60)


@app.function("calls" + SUFFIX)
def calls(ctx: Context, x: Any) -> int:
    n: int = ctx.state.get("calls", 0) + 1
    ctx.state["calls"] = n
    return n


if __name__ == "__main__":
    app.run()
