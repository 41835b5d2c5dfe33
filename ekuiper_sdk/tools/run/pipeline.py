"""``run_pipeline``: a plugin folder's source through its function into its sink, like a
small rule, under :class:`~.host.PluginHost` (what ``ekuiper-plugin run`` shows).

Three shapes, chosen by what the plugin has and what the caller gives: records (from the
source, or ``records`` given) through the function into the sink; calls of the function
alone (``calls``); records into the sink alone. Per-record failures (a function error, a
sink's error ack, a frame that is not JSON) are counted and reported, and the run goes on,
as a rule does; a failure of the plugin itself ends the run with one :class:`HostError`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import pynng

from ...errors import (
    FunctionError,
    HostError,
    InvalidFrameError,
    PackagingError,
    SinkAckError,
    SocketNameWarning,
    SourceConfigWarning,
)
from ...testing.gojson import go_json_dumps
from ...testing.handles import FunctionHandle, SinkHandle, SourceHandle
from ...testing.host import PluginHost
from ..manifest import Manifest, find_manifest, load_manifest
from .inputs import Expr, Field, evaluate, parse_arguments, render
from .plugin_log import LevelFilter, line_level


@dataclass
class RunSummary:
    """What a run did: records in and out, per-record errors, seconds."""

    records_in: int = 0
    records_out: int = 0
    errors: int = 0
    seconds: float = 0.0
    calls: bool = False
    started: bool = False  # the plugin was started: a refused run has nothing to sum up

    def __str__(self) -> str:
        unit = "calls" if self.calls else "records in"
        out = "results" if self.calls else "out"
        return (f"summary: {self.records_in} {unit}, {self.records_out} {out}, "
                f"{self.errors} error(s), {self.seconds:.2f}s")


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


def _default_arguments(record: dict[str, Any]) -> list[Expr]:
    # Without --args: the record's first string field (or first field), one argument.
    for key, value in record.items():
        if isinstance(value, str):
            return [Field((key,))]
    return [Field((key,)) for key in list(record)[:1]]


def _first_line(text: str) -> str:
    """The line of a host error that says most, without the output tail it carries."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1] if lines[0].startswith("Traceback") else lines[0]
    return re.sub(r"[;,]?\s*(plugin|last) output:$", "", line)


def explaining_lines(output: Sequence[str], limit: int = 10) -> list[str]:
    """The plugin output lines that explain a failure: its warnings, errors and tracebacks,
    else its last lines.

    >>> explaining_lines(["2026-01-01 10:00:00,0 INFO x: up", "Traceback (most recent...",
    ...                   "  File 'm.py'", "ValueError: boom"])
    ['Traceback (most recent...', "  File 'm.py'", 'ValueError: boom']
    """
    previous, marked = 30, []
    for line in output:
        previous = line_level(line, previous)
        if previous >= 30:
            marked.append(line)
    return (marked or [line for line in output if line.strip()][-5:])[-limit:]


class _Run:
    """The state of one run: handles, counters and where lines go."""

    def __init__(self, host: PluginHost, out: IO[str], log: IO[str] | None,
                 rule: str, summary: RunSummary) -> None:
        self.host, self.out, self.log, self.rule, self.summary = host, out, log, rule, summary

    def say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def error(self, line: str) -> None:
        self.summary.errors += 1
        if self.log is not None:
            self.log.write(f"error: {line}\n")
            self.log.flush()

    def note(self, line: str) -> None:
        if self.log is not None:
            self.log.write(f"note: {line}\n")
            self.log.flush()

    def warn(self, line: str) -> None:
        if self.log is not None:
            self.log.write(f"warning: {line}\n")
            self.log.flush()

    def apply(self, fn: FunctionHandle, name: str, exprs: list[Expr] | None,
              record: dict[str, Any], where: str) -> bool:
        """Call the function over ``record`` and store its result under its name."""
        chosen = exprs if exprs is not None else _default_arguments(record)
        text = f"{name}({render(chosen)})"
        try:
            result = fn.call(*[evaluate(e, record) for e in chosen], rule_id=self.rule,
                             op_id="project")
        except FunctionError as exc:
            hint = " (give its arguments with --args, e.g. --args \"x, 0, 100\")" \
                if exprs is None else ""
            self.error(f"{where}: {text}: {_first_line(str(exc))}{hint}")
            return False
        self.say(f"{text} -> {json.dumps(result, ensure_ascii=False, default=repr)}")
        record[name] = result
        return True

    def deliver(self, sink: SinkHandle, name: str, record: Any, where: str) -> None:
        try:
            sink.send(record)
        except SinkAckError as exc:
            self.error(f"{where}: sink {name} acked an error: {exc}")
            return
        self.summary.records_out += 1
        self.say(f"sink {name} <- {go_json_dumps(record).decode('utf-8')}")


@dataclass
class RunOptions:
    """What a run reads, calls and writes to, and how long it waits (see
    :func:`run_pipeline`, which says what each choice does; the defaults are the
    command's)."""

    source: str | None = None
    function: str | None = None
    sink: str | None = None
    count: int = 5
    rule_id: str | None = None
    datasource: str = ""
    conf_key: str | None = None
    source_config: dict[str, Any] | None = None
    sink_config: dict[str, Any] | None = None
    use_function: bool = True
    args: str | None = None
    calls: Iterable[Sequence[Any]] | None = None
    records: Iterable[Any] | None = None
    env: dict[str, str] | None = None
    timeout: float = 30.0
    python: str | None = None


def _options(options: RunOptions | None, choices: dict[str, Any]) -> RunOptions:
    known = {f.name for f in dataclasses.fields(RunOptions)}
    unknown = sorted(set(choices) - known)
    if unknown:
        raise TypeError(f"run_pipeline() has no option {', '.join(map(repr, unknown))}; "
                        f"the options are those of RunOptions: {', '.join(sorted(known))}")
    return dataclasses.replace(options or RunOptions(), **choices)


def run_pipeline(plugin_dir: str | os.PathLike[str], options: RunOptions | None = None, *,
                 out: IO[str] | None = None, log: IO[str] | None = None,
                 verbose: bool = False, summary: RunSummary | None = None,
                 **choices: Any) -> list[dict[str, Any]]:
    """Run a plugin folder's source through its function into its sink, like a small rule.

    Reads the folder's ``<name>.json`` manifest as ``ekuiper-plugin validate`` does, starts
    its executable under :class:`PluginHost` and picks the first source, function and sink
    the manifest lists unless named (``use_function=False`` skips the function). The
    source starts with ``datasource`` and the ``sources/<name>.yaml`` section ``conf_key``
    over its ``default``, with ``source_config`` over both, as eKuiper builds it; the sink
    with ``sink_config``, ``sendSingle`` and, unless ``sink_config`` sets it,
    ``requireAck`` (so that every record is known to be collected before the stop).

    - With a source (and no ``records``): ``count`` records go through the function into
      the sink. ``args`` is the function's arguments as SQL-like expressions over each
      record (``"x, 0, 'a'"``); by default its first string field.
    - ``records`` (dicts, e.g. lines of a JSON-lines file) replace the source.
    - ``calls`` (argument lists) call the function alone, once each.

    One line per step goes to ``out`` (default ``sys.stdout``). ``log``, when given, gets
    the plugin's warning and error lines as they come (every line with ``verbose``), each
    per-record error, and the summary line last. Returns the records (for calls, each as
    ``{"args": [...], "result": ...}``). A failure of the plugin raises :class:`HostError`:
    one line, followed by the output lines that explain it when ``log`` is not given.

    The choices come in ``options`` (a :class:`RunOptions`), or one by one as keyword
    arguments over it (``count=2``).

    Example::

        records = run_pipeline("plugins/pysam", count=2)
        # source pyjson -> {"name": "pyjson", "value": 2021}
        # revert(name) -> "nosjyp"
        # sink print <- {"name":"pyjson","revert":"nosjyp","value":2021}
    """
    o = _options(options, choices)
    stream = sys.stdout if out is None else out
    folder = Path(plugin_dir)
    manifest = _read_manifest(folder)
    name, language = manifest.name, manifest.language
    calls = list(o.calls) if o.calls is not None else None
    src_name = _pick(manifest, "sources", o.source) \
        if o.records is None and calls is None else None
    func_name = _pick(manifest, "functions", o.function) if o.use_function else None
    sink_name = _pick(manifest, "sinks", o.sink) if calls is None else None
    exprs = parse_arguments(o.args) if o.args is not None else None
    if calls is not None and func_name is None:
        raise HostError(f"plugin {name} has no function to call"
                        if o.use_function else "--call/--calls need the function")
    if calls is None and src_name is None and o.records is None:
        if sink_name is not None:
            raise HostError(f"plugin {name} has no source: give the sink records with "
                            f"--records FILE (JSON lines) or --records - (stdin)")
        if func_name is not None:
            raise HostError(f"plugin {name} has no source: give the function arguments with "
                            f"--call '1, 2' (repeatable) or --calls FILE (JSON arrays)")
        raise HostError(f"plugin {name} declares no source, function or sink")
    rule = o.rule_id or f"run{os.getpid()}_{random.getrandbits(32):08x}"
    deadline = time.monotonic() + o.timeout
    shown = LevelFilter(log, 10 if verbose else 30) if log is not None else None
    host = PluginHost(name, folder / manifest.executable, env=o.env, python=o.python,
                      init_timeout=min(o.timeout, 30.0),
                      control_timeout=min(o.timeout, 30.0),
                      language=language if language in ("python", "go") else "python",
                      echo=cast(IO[str], shown) if shown is not None else False)
    print_summary = summary is None
    summary = summary if summary is not None else RunSummary()
    summary.calls = calls is not None
    run = _Run(host, stream, log, rule, summary)
    results: list[dict[str, Any]] = []
    began = time.monotonic()
    summary.started = True
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", SocketNameWarning)
            host.start()
        for warning in seen:
            if log is None:     # nobody reads the run's lines: a warning the caller sees
                warnings.warn(warning.message, stacklevel=2)
            run.note(str(warning.message))
        if calls is not None:
            assert func_name is not None
            fn = host.function(func_name)
            for arguments in calls:
                summary.records_in += 1
                if isinstance(arguments, Exception):
                    run.error(f"call {summary.records_in}: {arguments}")
                    continue
                text = f"{func_name}({', '.join(json.dumps(a) for a in arguments)})"
                try:
                    result = fn.call(*arguments, rule_id=rule, op_id="project")
                except FunctionError as exc:
                    run.error(f"{text}: {_first_line(str(exc))}")
                    continue
                summary.records_out += 1
                run.say(f"{text} -> {json.dumps(result, ensure_ascii=False, default=repr)}")
                results.append({"args": list(arguments), "result": result})
        else:
            _flow(run, o, (src_name, func_name, sink_name), exprs, deadline, results)
    except HostError as exc:
        # The plugin's output reaches the filter on a thread of its own: closing the host
        # ends the process and joins that thread, so the summary sees every line first.
        host.close()
        raise HostError(_failure(name, exc, host, shown)) from None
    except (OSError, ValueError, TypeError, pynng.NNGException) as exc:
        raise HostError(f"plugin {name}: {type(exc).__name__}: {exc}") from None
    finally:
        host.close()
        summary.seconds = time.monotonic() - began
    if print_summary and log is not None:
        log.write(f"{summary}\n")
        log.flush()
    return results


def _flow(run: _Run, o: RunOptions,
          names: tuple[str | None, str | None, str | None], exprs: list[Expr] | None,
          deadline: float, results: list[dict[str, Any]]) -> None:
    """Records from the source (or ``records``) through the function into the sink; the
    source, function and sink are those named in ``names``, when named."""
    src_name, func_name, sink_name = names
    host, rule, summary = run.host, run.rule, run.summary
    sink_handle = None
    if sink_name is not None:
        sink_handle = host.start_sink(sink_name, rule, op_id="sink",
                                      config=_sink_start_config(o.sink_config))
    func_handle = host.function(func_name) if func_name is not None else None
    src = None
    if src_name is not None:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", SourceConfigWarning)
            src = host.start_source(src_name, rule, op_id="source", datasource=o.datasource,
                                    conf_key=o.conf_key, config=o.source_config)
        for warning in seen:
            run.warn(str(warning.message))
        feed: Iterable[Any] = _source_items(run, src, src_name, o.count, deadline)
    else:
        feed = o.records or ()
    label = f"source {src_name}" if src_name is not None else "record"
    for item in feed:
        summary.records_in += 1
        where = f"record {summary.records_in}"
        if isinstance(item, Exception):
            run.error(f"{where}: {_first_line(str(item))}")
            continue
        if not isinstance(item, dict):
            run.error(f"{where}: {json.dumps(item)[:60]} is not a JSON object")
            continue
        record = dict(item)
        run.say(f"{label} -> {json.dumps(record, ensure_ascii=False, default=repr)}")
        if func_handle is not None and func_name is not None \
                and not run.apply(func_handle, func_name, exprs, record, where):
            continue
        if sink_handle is not None and sink_name is not None:
            run.deliver(sink_handle, sink_name, record, where)
        else:
            summary.records_out += 1
        results.append(record)
    # Stopped here, not only by the host's close: a sink collects what it was sent before
    # it answers the stop, and a close would give it less time.
    if src is not None:
        src.stop()
    if sink_handle is not None:
        sink_handle.stop()


def _sink_start_config(sink_config: dict[str, Any] | None) -> dict[str, Any]:
    """The sink's properties: ``sendSingle``, and ``requireAck`` unless the user set it.

    With an ack per record the run knows each record was collected before it stops the
    sink, and a failed collect is counted against its record; without, closing the host's
    socket at the stop drops the frames still queued in it (seen with ``--records``: up to a
    sixth of 2,000 records lost, while the summary counted them out).
    """
    config = {"sendSingle": True, **(sink_config or {})}
    if not any(key.casefold() == "requireack" for key in config):
        config["requireAck"] = True
    return config


def _source_items(run: _Run, src: SourceHandle, name: str, count: int,
                  deadline: float) -> Iterator[Any]:
    """``count`` tuples' messages; a frame eKuiper could not decode comes as its error.

    A decorated source whose function returned (a file read to its end) or raised sends
    nothing more, and says so in its log: the run ends there rather than at the timeout.
    """
    marker = f"source {name!r} "
    for got in range(count):
        while True:
            try:
                yield src.recv(min(0.25, max(0.0, deadline - time.monotonic()))).message
                break
            except InvalidFrameError as exc:
                report = _source_report(exc.raw, name)
                if report is None:
                    yield exc
                    break
                if report.startswith(("open failed", "failed and sends nothing more")):
                    raise HostError(f"source {name} failed after {got} record(s) and sends "
                                    f"nothing more") from None
                run.error(f"source {name}: {report}")     # ctx.emit_error: not a record
                continue
            except HostError:
                if time.monotonic() >= deadline:
                    raise
            ended = [line for line in run.host.output
                     if marker in line and f"rule={run.rule} " in line
                     and (" finished: " in line or " failed and sends nothing more" in line)]
            if any(" failed " in line for line in ended):
                raise HostError(f"source {name} failed after {got} record(s) and sends "
                                f"nothing more")
            if ended:
                run.warn(f"source {name} finished after {got} record(s) of the {count} "
                         f"asked for (--count)")
                return


def _source_report(raw: bytes, name: str) -> str | None:
    """What a source reported to the rule with an error frame
    (``runtime.protocol.encode_source_error``), or None for any other bad frame."""
    prefix = f"source {name!r} ".encode()
    return raw[len(prefix):].decode("utf-8", "replace") if raw.startswith(prefix) else None


def _failure(name: str, exc: HostError, host: PluginHost, shown: LevelFilter | None) -> str:
    """One line for a failure of the plugin, and what explains it."""
    line = f"plugin {name}: {_first_line(str(exc)) or type(exc).__name__}"
    if shown is None:
        lines = explaining_lines(host.output)
        return line + "".join(f"\n  | {text}" for text in lines)
    if shown.problems:
        return line + " (the plugin's lines above say why)"
    more = f"; -v shows the {shown.hidden} line(s) it wrote" if shown.hidden else ""
    return line + f" (the plugin logged no warning or error{more})"
