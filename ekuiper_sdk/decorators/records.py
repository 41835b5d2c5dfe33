"""Sink frames turned into records: what a new-style sink receives instead of bytes.

eKuiper encodes a sink's output with the rule's ``format`` before sending it: by default
JSON, one object per frame when the action sets ``sendSingle``, otherwise an array of
objects. A record sink gets, per mode:

- ``"each"``: one call per record (an object frame is one record, an array frame is
  one record per element);
- ``"list"``: one call per frame with the list of records (an object frame becomes a
  one-element list);

Arrays nested in the frame's array are flattened in order: with ``batchSize`` or
``lingerInterval`` (and ``sendSingle`` false), a real eKuiper sends each batch as an array
of one-row arrays, ``[[{"n":1}],[{"n":2}]]``; with ``sendSingle`` it sends
``[{"n":1},{"n":2}]``, and a window's output is a flat array of rows.
- ``"bytes"``: the frame as eKuiper sent it.

When the rule's ``format`` is not JSON (``binary``, ``protobuf``, ``delimited``...), every
mode delivers the frame's bytes: only the rule knows how to read them. With a
``dataTemplate``, eKuiper sends whatever text the template renders: it is decoded when
it is JSON, and delivered as bytes when it is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ..errors import RecordError
from ..runtime import codec

#: How a sink wants its frames: ``"each"``, ``"list"`` or ``"bytes"``.
RecordMode = Literal["each", "list", "bytes"]
EACH: RecordMode = "each"
LIST: RecordMode = "list"
BYTES: RecordMode = "bytes"
MODES = (EACH, LIST, BYTES)


def check_mode(records: str, what: str = "records") -> RecordMode:
    """Refuse an unknown mode with the list of known ones.

    >>> check_mode("each")
    'each'
    """
    for mode in MODES:
        if records == mode:
            return mode
    raise ValueError(f"{what}={records!r} is not a record mode; use 'each', 'list' or "
                     "'bytes'")


class RecordDecoder:
    """Turns the frames of one sink instance into the arguments of its calls.

    >>> RecordDecoder({"sendSingle": False}, "each").decode(b'[{"a":1},{"a":2}]')
    [{'a': 1}, {'a': 2}]
    >>> RecordDecoder({"sendSingle": True}, "list").decode(b'{"a":1}')
    [[{'a': 1}]]
    >>> RecordDecoder({"format": "delimited"}, "each").decode(b'1,2')
    [b'1,2']
    """

    def __init__(self, config: Mapping[str, Any], mode: RecordMode = EACH) -> None:
        self.mode = check_mode(mode)
        fmt = config.get("format")
        self.format = fmt.lower() if isinstance(fmt, str) and fmt else "json"
        template = config.get("dataTemplate")
        self.templated = isinstance(template, str) and bool(template.strip())
        self.decodes = self.mode != BYTES and self.format == "json"
        self._parse: Any = None  # the codec's loads, taken on the first frame (see codec)

    def decode(self, frame: bytes) -> list[Any]:
        """The arguments of the calls for one frame, in order (one per call)."""
        if not self.decodes:
            return [frame]
        try:
            value = (self._parse or self._take_parser())(frame)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            if self.templated:
                # The template's output is the rule author's text format.
                return [frame]
            raise RecordError(f"the frame is not JSON although the rule's format is json "
                              f"({exc}); take bytes with records='bytes'") from None
        if isinstance(value, dict):  # sendSingle: one record, the most frequent frame
            return [[value]] if self.mode == LIST else [value]
        rows = _flatten(value) if isinstance(value, list) else [value]
        return [rows] if self.mode == LIST else rows

    def _take_parser(self) -> Any:
        self._parse = codec.codec().loads
        return self._parse


def _flatten(items: list[Any]) -> list[Any]:
    """The records of a frame's array, with nested arrays (batches of rows) flattened.

    >>> _flatten([[{"n": 1}], [{"n": 2}, {"n": 3}]])
    [{'n': 1}, {'n': 2}, {'n': 3}]
    """
    if not any(isinstance(item, list) for item in items):
        return items
    out: list[Any] = []
    for item in items:
        if isinstance(item, list):
            out.extend(_flatten(item))
        else:
            out.append(item)
    return out
