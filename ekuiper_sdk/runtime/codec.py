"""Strict JSON for a Go host, with no I/O: what the plugin writes, eKuiper can decode.

eKuiper reads every frame with Go's ``encoding/json``, which has no ``NaN`` or
``Infinity``, wants UTF-8 text and string keys. :func:`dumps` applies the documented
conversion rules of :func:`to_json_value` (docs/api.md, "What JSON eKuiper receives") on
either codec: orjson where it is installed, the standard library everywhere else.
"""

from __future__ import annotations

import base64
import enum
import json
import math
import os
import sys
from collections.abc import Mapping
from typing import Any, Union

from ..errors import EncodeError

JsonValue = Union[None, bool, int, float, str, list, dict]  # type: ignore[type-arg]


def to_json_value(value: Any, _depth: int = 0) -> Any:
    """Convert a Python value to one Go's ``encoding/json`` accepts, by documented rules.

    - ``NaN``, ``Infinity`` and ``-Infinity`` become ``null`` (Go has no literal for them);
    - ``bytes`` become base64 text (the way Go sends ``[]byte``);
    - ``datetime``/``date``/``time`` become ISO 8601 text; ``Decimal`` and ``UUID`` become text;
    - tuples, sets and frozensets become lists (sets sorted when their items allow it);
    - mapping keys that are ``str``, ``int``, ``float``, ``bool`` or ``None`` become text,
      as ``json.dumps`` spells them; other keys are refused;
    - enums become their value; anything else is refused with :class:`EncodeError`.

    >>> to_json_value({1: float("nan"), "b": b"hi", "s": {2, 1}})
    {'1': None, 'b': 'aGk=', 's': [1, 2]}
    """
    if _depth > 500:
        raise EncodeError("value is nested more than 500 levels deep")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {_json_key(k): to_json_value(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v, _depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        try:
            items = sorted(value)
        except TypeError:
            items = list(value)
        return [to_json_value(v, _depth + 1) for v in items]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    # datetime, decimal and uuid are looked up, not imported: a value of their types
    # can only exist once its module was imported, and importing all three costs an
    # idle plugin about 1.3 MB of resident memory.
    dt = sys.modules.get("datetime")
    if dt is not None and isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return to_json_value(value.value, _depth + 1)
    if _is_text_type(value):
        return str(value)
    if isinstance(value, Mapping):
        return to_json_value(dict(value), _depth)
    raise EncodeError(f"{type(value).__name__} is not JSON serializable")


def _is_text_type(value: Any) -> bool:
    for module, name in (("decimal", "Decimal"), ("uuid", "UUID")):
        mod = sys.modules.get(module)
        if mod is not None and isinstance(value, getattr(mod, name)):
            return True
    return False


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    if isinstance(key, enum.Enum):
        return _json_key(key.value)
    raise EncodeError(f"a mapping key of type {type(key).__name__} cannot be a JSON key")


# One encoder made once: ``json.dumps`` with any option builds a new encoder per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def _stdlib_dumps(value: Any) -> bytes:
    try:
        return _ENCODER.encode(value).encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        pass
    try:
        return _ENCODER.encode(to_json_value(value)).encode("utf-8", "strict")
    except UnicodeEncodeError as exc:
        raise EncodeError(f"text is not valid Unicode ({exc.reason})") from None
    except RecursionError:
        raise EncodeError("value is nested too deeply") from None


class _Codec:
    """The JSON functions in use: orjson when it can be imported, else the standard library.

    Both give the same values by the rules of :func:`to_json_value`: orjson handles what
    it encodes the same way itself (NaN as null, enums as values, UUIDs as text), hands
    datetimes, dataclasses and unknown types to :func:`to_json_value`, and everything it
    refuses (non-text keys, integers beyond 64 bits, lone surrogates) goes the stdlib way.
    Only the spelling of some exponents differs (``1e-7`` against ``1e-07``). Reading,
    text orjson refuses (``NaN``, ``1e400``, lone surrogate escapes) goes the stdlib way
    too; one difference is left: an integer literal beyond 64 bits reads as a float
    (the stdlib gives an int). eKuiper writes integers as 64-bit values, so such a
    literal is a float the host wrote without an exponent (Go does so below 1e21).

    It is loaded on the first frame, not at import: an idle plugin does not pay the
    memory of the extension module.
    """

    def __init__(self, use_orjson: bool = True) -> None:
        try:
            if not use_orjson:
                raise ImportError("the standard library codec was asked for")
            import orjson
        except ImportError:
            self.name = "json"
            self.dumps = _stdlib_dumps
            self.loads: Any = json.loads
            return
        self.name = "orjson"
        encode, decode_error = orjson.dumps, orjson.JSONDecodeError
        options = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
        fast_loads, stdlib_loads = orjson.loads, json.loads

        def dumps(value: Any) -> bytes:
            try:
                return encode(value, default=to_json_value, option=options)
            except TypeError:  # orjson.JSONEncodeError: let the stdlib path decide
                return _stdlib_dumps(value)

        def loads(data: bytes | str) -> Any:
            try:
                return fast_loads(data)
            except decode_error:
                # The stdlib path reads what orjson won't (NaN, lone surrogates) or
                # raises its own, familiar error.
                return stdlib_loads(data)

        self.dumps = dumps
        self.loads = loads


#: ``EKUIPER_SDK_JSON=stdlib`` in the environment uses the standard library even when
#: orjson is installed (to compare, or to rule the codec out when chasing a problem).
JSON_ENV = "EKUIPER_SDK_JSON"
_codec: _Codec | None = None


def codec() -> _Codec:
    """The JSON codec in use (``codec().name`` is ``"orjson"`` or ``"json"``)."""
    global _codec
    if _codec is None:
        _codec = _Codec(use_orjson=os.environ.get(JSON_ENV) != "stdlib")
    return _codec


def dumps(value: Any) -> bytes:
    """Compact strict JSON bytes by the rules of :func:`to_json_value`.

    >>> dumps({"x": float("inf"), "b": b"hi"})
    b'{"x":null,"b":"aGk="}'
    """
    return (_codec or codec()).dumps(value)


def loads(data: bytes | str) -> Any:
    """Parse JSON sent by the host."""
    return (_codec or codec()).loads(data)
