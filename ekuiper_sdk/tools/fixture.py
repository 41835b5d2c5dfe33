"""The fixture file ``ekuiper-plugin record`` writes and the replay reads: JSON Lines, one
event a line, each with the rule, symbol, framing and configuration it came with.

The first line is the header, ``{"kind": "recording", "format": 1, "plugin": ...}``; then,
in the order they arrived:

- ``{"kind": "sink", "rule", "symbol", "action", "config", "framing", "frame"}``: one frame
  a sink action got. ``frame`` is the frame's JSON value when writing it back gives the
  very bytes eKuiper sent (as it does for eKuiper's compact JSON); other frames are kept
  as ``"text"`` or, when not UTF-8, ``"base64"``.
- ``{"kind": "call", "rule", "symbol", "call", "args", "result"}``: one call of a function,
  with the arguments it received; ``"error"`` instead of ``"result"`` when the call failed
  on the server.
- ``{"kind": "source", "rules", "stream", "symbol", "datasource", "conf_key", "stream_props",
  "message"}``: one tuple a source emitted for a stream.

Example::

    fixture = read_fixture("tests/fixtures/demo.jsonl")
    frames = [e for e in fixture.events if e["kind"] == "sink"]
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Union

FORMAT = 1
KINDS = ("sink", "call", "source")
#: The sink properties that decide how eKuiper frames rows (docs/testing.md, send_rows).
FRAMING_KEYS = ("sendSingle", "batchSize", "lingerInterval")
_REQUIRED = {"sink": ("rule", "symbol", "config"), "call": ("rule", "symbol", "args"),
             "source": ("stream", "symbol")}
PathLike = Union[str, "os.PathLike[str]"]


class FixtureError(ValueError):
    """A fixture file that cannot be read: one line naming the file, the line and the fix."""


def framing(config: dict[str, Any]) -> dict[str, Any]:
    """The framing properties of a sink action's config, under their eKuiper spelling.

    >>> framing({"batchsize": 3, "prefix": "> "})
    {'batchSize': 3}
    """
    folded = {str(k).casefold(): v for k, v in config.items()}
    return {k: folded[k.casefold()] for k in FRAMING_KEYS if k.casefold() in folded}


def compact_json(value: Any) -> bytes:
    """JSON as eKuiper's encoder writes a frame: compact, UTF-8, in the given key order."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


def frame_fields(raw: bytes) -> dict[str, Any]:
    """How a frame is kept in an event: its JSON value when that writes back to ``raw``.

    >>> frame_fields(b'[{"n":1}]'), frame_fields(b"n=1")
    ({'frame': [{'n': 1}]}, {'text': 'n=1'})
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode("ascii")}
    try:
        value = json.loads(text)
        if compact_json(value) == raw:
            return {"frame": value}
    except ValueError:
        pass
    return {"text": text}


def frame_bytes(event: dict[str, Any]) -> bytes:
    """The bytes of a sink event's frame, as eKuiper sent them."""
    if "frame" in event:
        return compact_json(event["frame"])
    if "text" in event:
        return str(event["text"]).encode("utf-8")
    return base64.b64decode(str(event["base64"]))


def frame_records(event: dict[str, Any]) -> list[Any]:
    """The records of a sink event's frame: one for an object, each row of an array (a
    batch's one-row arrays flattened); ``[]`` for a frame that is not JSON.

    >>> frame_records({"frame": [[{"n": 1}], [{"n": 2}]]})
    [{'n': 1}, {'n': 2}]
    """
    if "frame" in event:
        value = event["frame"]
    else:
        try:    # a frame kept as text (Go's escapes, say) can still be JSON
            value = json.loads(str(event.get("text")))
        except ValueError:
            return []
    if not isinstance(value, list):
        return [value]
    return [row for item in value for row in (item if isinstance(item, list) else [item])]


@dataclass
class Fixture:
    """A read fixture: its header and events (each a dict, ``line`` added: its line)."""

    path: Path
    header: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]


def read_fixture(path: PathLike) -> Fixture:
    """Read and check a fixture file; :class:`FixtureError` names the line at fault."""
    where = Path(path)
    try:
        lines = where.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise FixtureError(f"{where}: cannot read the fixture ({exc.strerror}); record one "
                           f"with ekuiper-plugin record --out {where}") from None
    fixture: Fixture | None = None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise FixtureError(f"{where}:{number}: not JSON ({exc}); each line is one JSON "
                               f"object") from None
        if not isinstance(value, dict):
            raise FixtureError(f"{where}:{number}: a {type(value).__name__}, not a JSON object")
        if fixture is None:
            if value.get("kind") != "recording" or value.get("format") != FORMAT:
                raise FixtureError(f"{where}:{number}: the first line must be the header "
                                   f'{{"kind": "recording", "format": {FORMAT}, ...}}')
            fixture = Fixture(where, value)
            continue
        kind = value.get("kind")
        if kind not in KINDS:
            raise FixtureError(f"{where}:{number}: kind {kind!r} is not one of "
                               f"{', '.join(KINDS)}")
        missing = [k for k in _REQUIRED[str(kind)] if k not in value]
        if kind == "sink" and not any(k in value for k in ("frame", "text", "base64")):
            missing.append("frame")
        if missing:
            raise FixtureError(f"{where}:{number}: a {kind} event needs {', '.join(missing)}")
        fixture.events.append(dict(value, line=number))
    if fixture is None:
        raise FixtureError(f"{where}: empty; record one with ekuiper-plugin record")
    return fixture


class FixtureWriter:
    """Writes a fixture as events arrive, one flushed line each, so that an interrupted
    recording keeps what it got."""

    def __init__(self, path: PathLike, header: dict[str, Any]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = self.path.open("w", encoding="utf-8")
        self.count = 0
        self._line({"kind": "recording", "format": FORMAT, **header})

    def _line(self, value: dict[str, Any]) -> None:
        self._file.write(json.dumps(value, ensure_ascii=False) + "\n")
        self._file.flush()

    def write(self, event: dict[str, Any]) -> None:
        self._line(event)
        self.count += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> FixtureWriter:  # noqa: PYI034 - Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

