"""Replay a fixture recorded on a real eKuiper (``ekuiper-plugin record``) against a plugin
folder under :class:`~.host.PluginHost`, with the framing and configuration recorded.

Each recorded sink action becomes a running sink with the action's properties
(``sendSingle``, ``batchSize``, ``lingerInterval``, the user's keys) and gets the recorded
frames, byte for byte, in the recorded order; each call goes to the function with the
recorded arguments; each stream's source starts with the recorded ``DATASOURCE``,
``CONF_KEY`` and stream properties and gives as many tuples as were recorded. The sinks get
``requireAck: true`` unless the recording set it, so that each frame's outcome is known
(the plugin's error ack, or a ``collect`` that raised, counts against its frame).

Example::

    result = replay("tests/fixtures/demo.jsonl", "plugins/demo")
    assert result.errors == []
    assert_snapshot(result.outputs(), "tests/snapshots/demo.json")
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import pynng

from ..errors import FunctionError, HostError, PackagingError, SinkAckError
from ..tools.fixture import Fixture, compact_json, frame_bytes, frame_records, read_fixture
from ..tools.manifest import find_manifest, load_manifest
from .handles import SinkHandle, SourceHandle
from .host import PluginHost

PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class Outcome:
    """What one recorded event gave on replay."""

    event: dict[str, Any]
    output: dict[str, Any]
    error: str | None = None
    #: For a failed frame of several records: the first record that fails alone.
    culprit: tuple[int, Any] | None = None

    def describe(self) -> str:
        """One line: where in the fixture, the record, its frame and the plugin's error.

        >>> Outcome({"kind": "call", "line": 3, "rule": "r", "call": "f(x)", "args": [1]},
        ...         {}, "bad").describe()
        'line 3: rule r, call f(x) with [1]: bad'
        """
        e = self.event
        head = f"line {e.get('line')}: rule {e.get('rule') or ','.join(e.get('rules') or [])}"
        if e["kind"] == "call":
            return f"{head}, call {e['call']} with {json.dumps(e['args'])}: {self.error}"
        if e["kind"] == "source":
            return f"{head}, source {e['symbol']}: {self.error}"
        records = frame_records(e)
        frame = frame_bytes(e).decode("utf-8", "replace")
        if self.culprit is not None:
            index, record = self.culprit
            what = (f"record {json.dumps(record, ensure_ascii=False)} (record {index + 1} "
                    f"of {len(records)} in frame {frame})")
        elif len(records) == 1:
            what = f"record {json.dumps(records[0], ensure_ascii=False)} (frame {frame})"
        else:
            what = f"frame {frame}"
        return f"{head}, sink {e['symbol']}: {what}: {self.error}"


@dataclass
class Replay:
    """A replay's outcomes, in the fixture's order, and the plugin's output lines."""

    fixture: Fixture
    outcomes: list[Outcome] = field(default_factory=list)
    output: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is not None]

    def outputs(self) -> list[dict[str, Any]]:
        """What the plugin gave for each event, JSON-ready: what a snapshot keeps."""
        return [o.output for o in self.outcomes]

    def changed_calls(self) -> list[Outcome]:
        """Calls whose result differs from the one recorded on the server."""
        return [o for o in self.outcomes if o.event["kind"] == "call" and o.error is None
                and "result" in o.event and o.output.get("result") != o.event["result"]]


def _manifest(folder: Path) -> tuple[str, Path, str]:
    try:
        manifest, problems = load_manifest(find_manifest(folder))
    except PackagingError as exc:
        raise HostError(str(exc.problems[0])) from None
    if manifest is None:
        raise HostError(str(problems[0]) if problems else f"{folder}: no manifest")
    return manifest.name, folder / manifest.executable, manifest.language


def _sink_config(recorded: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    config = {**recorded, **extra}
    if not any(str(k).casefold() == "requireack" for k in config):
        config["requireAck"] = True
    return config


def _alone(event: dict[str, Any], record: Any) -> bytes:
    """One record in a frame of the failed frame's shape."""
    frame = event["frame"] if "frame" in event else json.loads(str(event.get("text")))
    if isinstance(frame, list):
        return compact_json([[record]] if frame and isinstance(frame[0], list) else [record])
    return compact_json(record)


class _Session:
    """The running symbols of one replay."""

    def __init__(self, host: PluginHost, fixture: Fixture, config: Mapping[str, Any],
                 suffix: str, locate: bool) -> None:
        self.host, self.fixture, self.config = host, fixture, config
        self.suffix, self.locate = suffix, locate
        self.sinks: dict[tuple[str, str, int], SinkHandle] = {}
        self.sources: dict[str, SourceHandle] = {}
        self.frames: dict[tuple[str, str, int], int] = {}

    def rule(self, recorded: str) -> str:
        return f"{recorded}_{self.suffix}"

    def sink(self, event: dict[str, Any]) -> Outcome:
        key = (str(event["rule"]), str(event["symbol"]), int(event.get("action") or 0))
        handle = self.sinks.get(key)
        if handle is None:
            handle = self.sinks[key] = self.host.start_sink(
                key[1], self.rule(key[0]), op_id=f"{key[1]}_{key[2]}",
                config=_sink_config(event.get("config") or {}, self.config.get(key[1], {})))
        self.frames[key] = number = self.frames.get(key, 0) + 1
        output: dict[str, Any] = {"kind": "sink", "symbol": key[1], "frame": number,
                                  "records": len(frame_records(event))}
        try:
            handle.send(frame_bytes(event))
        except SinkAckError as exc:
            output["error"] = str(exc)
            culprit = self._culprit(event, handle) if self.locate else None
            return Outcome(event, output, str(exc), culprit)
        output["ack"] = "ok"
        return Outcome(event, output)

    def _culprit(self, event: dict[str, Any], handle: SinkHandle) -> tuple[int, Any] | None:
        records = frame_records(event)
        if len(records) < 2:
            return None
        probe = self.host.start_sink(handle.symbol, f"{handle.control['meta']['ruleId']}p",
                                     op_id=handle.control["meta"]["opId"],
                                     config=dict(handle.control.get("config") or {}))
        try:
            for index, record in enumerate(records):
                try:
                    probe.send(_alone(event, record))
                except SinkAckError:
                    return index, record
        finally:
            probe.stop()
        return None

    def call(self, event: dict[str, Any]) -> Outcome:
        output: dict[str, Any] = {"kind": "call", "call": event["call"], "args": event["args"]}
        try:
            result = self.host.function(str(event["symbol"])).call(
                *event["args"], rule_id=self.rule(str(event["rule"])), op_id="project")
        except FunctionError as exc:
            output["error"] = str(exc)
            return Outcome(event, output, str(exc))
        output["result"] = result
        return Outcome(event, output)

    def source(self, event: dict[str, Any], timeout: float) -> Outcome:
        stream = str(event["stream"])
        handle = self.sources.get(stream)
        if handle is None:
            handle = self.sources[stream] = self.host.start_source(
                str(event["symbol"]), self.rule(f"rec_{stream}"), op_id="source",
                datasource=str(event.get("datasource") or ""),
                conf_key=event.get("conf_key") or None,
                config=dict(self.config.get(str(event["symbol"]), {})) or None,
                stream=dict(event.get("stream_props") or {}))
        output: dict[str, Any] = {"kind": "source", "stream": stream}
        try:
            output["message"] = handle.recv(timeout).message
        except HostError as exc:
            output["error"] = str(exc).splitlines()[0]
            return Outcome(event, output, output["error"])
        return Outcome(event, output)

    def stop(self) -> None:
        # A sink collects what it was sent before it answers the stop (as in run_pipeline).
        for source in self.sources.values():
            source.stop()
        for sink in self.sinks.values():
            sink.stop()


def replay(fixture: PathLike | Fixture, plugin_dir: PathLike, *,
           config: Mapping[str, Mapping[str, Any]] | None = None,
           kinds: tuple[str, ...] = ("sink", "call", "source"),
           env: dict[str, str] | None = None, python: str | None = None,
           timeout: float = 10.0, locate: bool = True) -> Replay:
    """Replay ``fixture`` against the plugin in ``plugin_dir``; the outcomes, in order.

    ``config`` gives properties per symbol written over the recorded ones (a path the
    test owns, say). ``kinds`` picks which events to replay. With ``locate``, a frame of
    several records that fails is followed by each of its records alone, in a frame of
    the same shape, to a second instance of the sink, to name the record that fails.
    A failure of the plugin itself (it does not start, a start is refused) raises
    :class:`HostError`; a frame or call that fails is an outcome with its ``error``.
    """
    loaded = fixture if isinstance(fixture, Fixture) else read_fixture(fixture)
    name, executable, language = _manifest(Path(plugin_dir))
    host = PluginHost(name, executable, env=env, python=python,
                      language=language if language in ("python", "go") else "python")
    result = Replay(loaded)
    session = _Session(host, loaded, config or {}, f"r{random.getrandbits(24):06x}", locate)
    try:
        host.start()
        for event in loaded.events:
            if event["kind"] not in kinds:
                continue
            if event["kind"] == "sink":
                result.outcomes.append(session.sink(event))
            elif event["kind"] == "call":
                result.outcomes.append(session.call(event))
            else:
                result.outcomes.append(session.source(event, timeout))
        session.stop()
    except pynng.AddressInUse:
        raise HostError(f"plugin {name}: an IPC socket it needs (/tmp/plugin_{name}.ipc, "
                        f"/tmp/func_<function>.ipc) is in use: an eKuiper on this machine "
                        f"runs this plugin; replay where it does not run, or stop it") from None
    finally:
        host.close()
        result.output = list(host.output)
    return result
