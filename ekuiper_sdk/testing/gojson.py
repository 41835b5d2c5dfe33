"""eKuiper's side of JSON: values encoded and frames decoded as Go's ``encoding/json`` does.

The test host shares no encoder with the plugin runtime, so a test against it catches the
runtime's encoding bugs: Go sorts map keys, escapes ``<``, ``>`` and ``&``, refuses ``NaN``
and ``Infinity``, replaces invalid UTF-8 with U+FFFD, matches struct fields in any case
(the last key wins), and reads every number into a ``float64``.
"""

from __future__ import annotations

import base64
import json
import math
import sys
from typing import (
    Any,
    NamedTuple,
)

from ..errors import HostError, InvalidFrameError


class SourceTuple(NamedTuple):
    """One tuple from a source: ``message`` and ``meta`` as eKuiper decoded them, and the frame.

    ``message`` is None for a frame without one, such as the official SDK's
    ``{"error": ...}`` frames (eKuiper v2 feeds those to the rule as an empty tuple).
    """

    message: dict[str, Any] | None
    meta: dict[str, Any] | None
    raw: bytes


class FuncReply(NamedTuple):
    """A function's reply: ``state`` False means failure, with the reason in ``result``."""

    state: bool
    result: Any


def go_value(value: Any) -> Any:
    """Turn a Python value into what Go would marshal for the same data."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"json: unsupported value: {value!r}")
        # Go writes an integral float64 without a fraction ("2", not "2.0"), so a plugin
        # decoding the frame gets an int where eKuiper holds a float64.
        if value.is_integer() and abs(value) < 1e21:
            return int(value)
        return value
    if isinstance(value, dict):
        items = [(_go_key(k), go_value(v)) for k, v in value.items()]
        # Go sorts the keys of a map by their bytes.
        items.sort(key=lambda kv: kv[0].encode("utf-8", "surrogatepass"))
        return dict(items)
    if isinstance(value, (list, tuple)):
        return [go_value(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")   # how Go sends []byte
    raise ValueError(f"json: unsupported type: {type(value).__name__}")


def _go_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    raise ValueError(f"json: unsupported map key type: {type(key).__name__}")


def go_dumps_prepared(value: Any) -> bytes:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # Go escapes these inside strings (HTML safety and JavaScript line separators).
    for char, escape in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        if char in text:
            text = text.replace(char, escape)
    return text.encode("utf-8", "replace")


def go_json_dumps(value: Any) -> bytes:
    """Encode ``value`` as Go's ``json.Marshal`` would encode the same data.

    Map keys sorted, no spaces, ``<``, ``>`` and ``&`` escaped, integral floats without a
    fraction, ``bytes`` as base64; ``NaN`` and ``Infinity`` are refused with ``ValueError``.

    >>> go_json_dumps({"b": 1.0, "a": "<x>", "c": b"hi"})
    b'{"a":"\\\\u003cx\\\\u003e","b":1,"c":"aGk="}'
    """
    return go_dumps_prepared(go_value(value))


class _GoJSONError(ValueError):
    pass


_MAX_FLOAT64 = sys.float_info.max


def _go_loads(raw: bytes) -> tuple[Any, list[tuple[str, Any]]]:
    """Parse JSON as Go's decoder accepts it; also return the top-level object's key pairs.

    The pairs keep every key in order, which Go's case-insensitive field matching needs.
    """
    top_pairs: list[list[tuple[str, Any]]] = [[]]

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        top_pairs[0] = pairs     # the outermost object is the last one finished
        return dict(pairs)

    def reject_constant(name: str) -> Any:
        raise _GoJSONError(f"invalid character '{name[0]}' looking for beginning of value")

    def parse_float(text: str) -> float:
        number = float(text)
        if math.isinf(number):
            raise _GoJSONError(f"cannot unmarshal number {text} into Go value of type float64")
        return number

    def parse_int(text: str) -> int:
        number = int(text)
        if abs(number) > _MAX_FLOAT64:
            raise _GoJSONError(f"cannot unmarshal number {text} into Go value of type float64")
        return number

    # Go replaces invalid UTF-8 inside strings with U+FFFD instead of failing; outside a
    # string any non-ASCII byte is a syntax error for both decoders.
    text = bytes(raw).decode("utf-8", "replace")
    try:
        value = json.loads(text, object_pairs_hook=pairs_hook, parse_constant=reject_constant,
                           parse_float=parse_float, parse_int=parse_int)
    except _GoJSONError:
        raise
    except RecursionError:
        raise _GoJSONError("exceeded max depth") from None
    except ValueError as exc:
        raise _GoJSONError(str(exc)) from None
    return value, top_pairs[0]


def _go_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"


def _go_field(pairs: list[tuple[str, Any]], name: str) -> Any:
    """The value Go's decoder would store in the struct field ``name``.

    Go matches keys to fields case-insensitively (with Unicode folding) and the last
    matching key wins.
    """
    found = None
    folded = name.casefold()
    for key, value in pairs:
        if key == name or key.casefold() == folded:
            found = value
    return found


def _go_struct(raw: bytes, type_name: str) -> list[tuple[str, Any]] | None:
    """Decode a JSON object into key pairs the way ``json.Unmarshal`` into a struct would."""
    value, pairs = _go_loads(raw)
    if value is None:           # JSON null leaves a Go struct untouched
        return None
    if not isinstance(value, dict):
        raise _GoJSONError(f"json: cannot unmarshal {_go_kind(value)} into Go value of type "
                           f"{type_name}")
    return pairs


def decode_source_frame(raw: bytes) -> SourceTuple:
    """Decode one source frame as the Go host does, or raise :class:`InvalidFrameError`.

    ``message`` and ``meta`` must be JSON objects or null; anything Go's decoder refuses
    (``NaN``, an array as message, numbers beyond float64...) makes the frame invalid.

    >>> decode_source_frame(b'{"Message": {"a": 1}, "meta": null}').message
    {'a': 1}
    """
    try:
        pairs = _go_struct(raw, "runtime.messageWrapper")
        message = meta = None
        if pairs is not None:
            message = _go_field(pairs, "message")
            meta = _go_field(pairs, "meta")
            for name, value in (("message", message), ("meta", meta)):
                if value is not None and not isinstance(value, dict):
                    raise _GoJSONError(
                        f"json: cannot unmarshal {_go_kind(value)} into Go struct field "
                        f"messageWrapper.{name} of type map[string]interface {{}}")
    except _GoJSONError as exc:
        text = bytes(raw).decode("utf-8", "replace")
        raise InvalidFrameError(f"Invalid data format, cannot decode {text} to json format "
                                f"with error {exc}", bytes(raw)) from None
    return SourceTuple(message, meta, bytes(raw))


def decode_func_reply(raw: bytes) -> FuncReply:
    try:
        pairs = _go_struct(raw, "runtime.FuncReply")
        if pairs is None:
            return FuncReply(False, None)
        state = _go_field(pairs, "state")
        if state is not None and not isinstance(state, bool):
            raise _GoJSONError(f"json: cannot unmarshal {_go_kind(state)} into Go struct field "
                               "FuncReply.state of type bool")
        return FuncReply(bool(state), _go_field(pairs, "result"))
    except _GoJSONError:
        raise HostError("Failed to unmarshal function result "
                        f"{bytes(raw).decode('utf-8', 'replace')}") from None


def decode_ack(raw: bytes) -> tuple[dict[str, Any], str]:
    """The ack as a dict, and its error text ("" for success)."""
    try:
        value, pairs = _go_loads(raw)
        if value is not None and not isinstance(value, dict):
            raise _GoJSONError(f"json: cannot unmarshal {_go_kind(value)} into Go value of "
                               "type runtime.ackResponse")
        error = _go_field(pairs, "error") if value is not None else None
        if error is not None and not isinstance(error, str):
            raise _GoJSONError(f"json: cannot unmarshal {_go_kind(error)} into Go struct field "
                               "ackResponse.error of type string")
    except _GoJSONError as exc:
        raise HostError(f"invalid sink ack {bytes(raw)!r}: {exc}") from None
    return (value or {}), (error or "")


def go_sprint(value: Any) -> str:
    """Roughly what Go's ``fmt.Sprintf("%s", value)`` shows for a decoded JSON value."""
    return value if isinstance(value, str) else json.dumps(value)
