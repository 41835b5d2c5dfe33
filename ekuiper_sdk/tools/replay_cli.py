"""``ekuiper-plugin run DIR --replay FIXTURE``: a recorded fixture replayed against the
plugin under the built-in host (:mod:`ekuiper_sdk.testing.replay`), one line per event.

A frame or call the plugin fails on is one ``error:`` line on stderr: the fixture line,
the rule, the record, its frame and the plugin's one-line error. The exit status is 1 when
anything failed.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import IO, Any


def add_replay_argument(p: argparse.ArgumentParser) -> None:
    """``--replay FIXTURE`` on the ``run`` command."""
    p.add_argument("--replay", metavar="FIXTURE", help="replay a fixture recorded with "
                   "ekuiper-plugin record (sink frames, function calls, source tuples) with "
                   "its framing and configuration, instead of running the source")


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def cmd_replay(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    # Imported here: the replay needs the built-in host and its socket library.
    from ..errors import HostError
    from ..testing.replay import replay
    from .fixture import FixtureError, frame_bytes, read_fixture
    from .run.inputs import parse_property

    try:
        fixture = read_fixture(args.replay)
        props = dict(args.sink_config or {})
        props.update(parse_property(pair) for pair in args.sink_prop)
    except (FixtureError, ValueError) as exc:
        err.write(f"error: {exc}\n")
        return 2
    sinks = {str(e["symbol"]) for e in fixture.of_kind("sink")}
    began = time.monotonic()
    try:
        result = replay(fixture, args.dir, config={s: props for s in sinks},
                        python=args.python, timeout=min(args.timeout, 30.0))
    except (HostError, OSError) as exc:
        err.write(f"error: {args.dir}: {exc}\n")
        return 1
    counts = {"sink": 0, "call": 0, "source": 0}
    for outcome in result.outcomes:
        event, got = outcome.event, outcome.output
        counts[event["kind"]] += 1
        if event["kind"] == "sink":
            frame = frame_bytes(event).decode("utf-8", "replace")
            out.write(f"sink {event['symbol']} <- {frame} (rule {event['rule']}, frame "
                      f"{got['frame']}): {got.get('ack') or 'error'}\n")
        elif event["kind"] == "call":
            shown = _dump(got["result"]) if "result" in got else "error"
            was = (f" (recorded {_dump(event['result'])})"
                   if outcome in result.changed_calls() else "")
            out.write(f"{event['call']} with {_dump(event['args'])} -> {shown}{was}\n")
        else:
            out.write(f"source {event['symbol']} -> {_dump(got.get('message'))}\n")
        if outcome.error is not None:
            err.write(f"error: {outcome.describe()}\n")
    err.write(f"summary: {len(result.outcomes)} events replayed ({counts['sink']} frames, "
              f"{counts['call']} calls, {counts['source']} tuples), {len(result.errors)} "
              f"error(s), {time.monotonic() - began:.2f}s\n")
    return 1 if result.errors else 0
