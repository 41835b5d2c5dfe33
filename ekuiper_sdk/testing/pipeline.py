"""``run_pipeline``: a plugin folder's source through its function into its sink, like a
small rule, under :class:`~.host.PluginHost` (what ``ekuiper-plugin run`` shows)."""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path
from typing import (
    IO,
    Any,
)

from ..errors import HostError, PackagingError
from ..tools.manifest import Manifest, find_manifest, load_manifest
from .gojson import go_json_dumps
from .host import PluginHost


def _read_manifest(plugin_dir: Path) -> Manifest:
    """The folder's manifest, read as ``ekuiper-plugin validate`` reads it."""
    try:
        manifest, problems = load_manifest(find_manifest(plugin_dir))
    except PackagingError as exc:
        raise HostError(str(exc.problems[0])) from None
    if manifest is None:
        raise HostError(str(problems[0]) if problems else f"{plugin_dir}: no manifest")
    return manifest


def _pick(manifest: Manifest, kind: str, wanted: str | None) -> str | None:
    names = list(manifest.symbols()[kind])
    if wanted is None:
        return names[0] if names else None
    if wanted not in names:
        listed = ", ".join(names) or "none"
        raise HostError(f"{wanted!r} is not in the manifest's {kind} ({listed})")
    return wanted


def _argument_field(message: dict[str, Any]) -> str | None:
    for key, value in message.items():
        if isinstance(value, str):
            return key
    return next(iter(message), None)


def _telling_line(text: str) -> str:
    """The line of an error text that says most: a traceback's last line, else the first."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]


def run_pipeline(plugin_dir: str | os.PathLike[str], *, source: str | None = None,
                 function: str | None = None, sink: str | None = None, count: int = 5,
                 rule_id: str | None = None, datasource: str = "",
                 source_config: dict[str, Any] | None = None,
                 sink_config: dict[str, Any] | None = None,
                 env: dict[str, str] | None = None, out: IO[str] | None = None,
                 timeout: float = 30.0, python: str | None = None) -> list[dict[str, Any]]:
    """Run a plugin folder's source through its function into its sink, like a small rule.

    Reads the folder's ``<name>.json`` manifest as ``ekuiper-plugin validate`` does, starts
    its executable under :class:`PluginHost`, picks the first source, function and sink
    the manifest lists unless named, starts sink, function and source for one unique rule
    id, then for each of ``count`` tuples calls the function on the message's first
    string field (or its first field), stores the result under the function's name, and
    sends the record to the sink as one JSON object (``sendSingle``). One line per step
    goes to ``out`` (default ``sys.stdout``). A source is required; function and sink are
    skipped when the manifest has none. ``python`` is the interpreter that runs the plugin
    (default: this one). Returns the records. Any failure raises :class:`HostError` with a
    one-line message.

    Example::

        records = run_pipeline("plugins/pysam", count=2)
        # source pyjson -> {"name": "pyjson", "value": 2021}
        # revert(name) -> 'nosjyp'
        # sink print <- {"name": "pyjson", "revert": "nosjyp", "value": 2021}
    """
    stream = sys.stdout if out is None else out
    folder = Path(plugin_dir)
    manifest = _read_manifest(folder)
    name, language = manifest.name, manifest.language
    src_name = _pick(manifest, "sources", source)
    func_name = _pick(manifest, "functions", function)
    sink_name = _pick(manifest, "sinks", sink)
    if src_name is None:
        raise HostError(f"plugin {name} declares no source; run_pipeline needs one for data")
    rule = rule_id or f"run{os.getpid()}_{random.getrandbits(32):08x}"
    deadline = time.monotonic() + timeout
    records: list[dict[str, Any]] = []
    host = PluginHost(name, folder / manifest.executable, env=env, python=python,
                      init_timeout=min(timeout, 30.0), control_timeout=min(timeout, 30.0),
                      language=language if language in ("python", "go") else "python")
    try:
        host.start()
        sink_handle = None
        if sink_name is not None:
            sink_handle = host.start_sink(sink_name, rule, op_id="sink",
                                          config={"sendSingle": True, **(sink_config or {})})
        func_handle = host.function(func_name) if func_name is not None else None
        src_handle = host.start_source(src_name, rule, op_id="source", datasource=datasource,
                                       config=source_config)
        for _ in range(count):
            item = src_handle.recv(max(0.0, deadline - time.monotonic()))
            record = dict(item.message or {})
            stream.write(f"source {src_name} -> {json.dumps(record, ensure_ascii=False)}\n")
            if func_handle is not None:
                field = _argument_field(record)
                args = [record[field]] if field is not None else []
                result = func_handle.call(*args, rule_id=rule, op_id="project")
                stream.write(f"{func_name}({field or ''}) -> {result!r}\n")
                record[func_name or ""] = result
            if sink_handle is not None:
                sink_handle.send(record)
                stream.write(f"sink {sink_name} <- "
                             f"{go_json_dumps(record).decode('utf-8')}\n")
            stream.flush()
            records.append(record)
        src_handle.stop()
        if sink_handle is not None:
            sink_handle.stop()
    except HostError as exc:
        raise HostError(f"plugin {name}: {_telling_line(str(exc)) or type(exc).__name__}") from None
    except (OSError, ValueError, TypeError) as exc:
        raise HostError(f"plugin {name}: {type(exc).__name__}: {exc}") from None
    finally:
        host.close()
    return records
