"""The JSON codec: orjson and the standard library give the same JSON by the same rules."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import math
import subprocess
import sys
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ekuiper_sdk import errors
from ekuiper_sdk.runtime import codec

orjson = pytest.importorskip("orjson")

FAST = codec._Codec(use_orjson=True)
STDLIB = codec._Codec(use_orjson=False)


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: int


def test_the_codecs_are_the_ones_asked_for() -> None:
    assert FAST.name == "orjson"
    assert STDLIB.name == "json"


# Every rule of to_json_value, and the plain values around them.
RULE_CASES = [
    {"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf")},
    [float("nan"), 1.5, -0.0, 0.1],
    {"b": b"\x00\xffhi", "ba": bytearray(b"ab"), "mv": memoryview(b"xyz")},
    {"dt": datetime.datetime(2024, 5, 6, 7, 8, 9, 123456),
     "dt0": datetime.datetime(2024, 5, 6, 7, 8, 9),
     "aware": datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc),
     "offset": datetime.datetime(2024, 5, 6, tzinfo=datetime.timezone(
         datetime.timedelta(hours=5, minutes=30))),
     "d": datetime.date(2024, 1, 2), "t": datetime.time(3, 4, 5, 6)},
    {"dec": decimal.Decimal("1.10"), "u": uuid.UUID(int=12345)},
    {"e": Color.RED, "i": Level.HIGH, "list": [Color.RED, Level.HIGH]},
    {"set": {3, 1, 2}, "fs": frozenset({"b", "a"}), "mixed": {1, "a"}, "tuple": (1, (2, 3))},
    {2: "int key", 2.5: "float key", True: "bool key", None: "none key"},
    {Color.RED: 1},
    {"big": 2**70, "neg": -(2**65), "u64": 2**64 - 1, "i64": -(2**63)},
    {"text": "é ü 中 \u2028 \x00\x1f\x7f \"quoted\" \\ /", "empty": "", "nested": [[[[]]]]},
    {"a": {"b": {"c": [1, None, True, False, "x"]}}},
    {"message": {"seq": 1, "data": "0123456789abcdef" * 4}, "meta": None},
    "a string", 42, None, True, 3.25, [],
]


@pytest.mark.parametrize("value", RULE_CASES, ids=range(len(RULE_CASES)))
def test_both_codecs_write_the_same_bytes(value: Any) -> None:
    assert FAST.dumps(value) == STDLIB.dumps(value)


def test_the_rules_themselves() -> None:
    out = json.loads(FAST.dumps({"x": float("nan"), "b": b"hi", "s": {2, 1}, 1: Color.RED,
                                 "d": datetime.date(2024, 1, 2)}))
    assert out == {"x": None, "b": "aGk=", "s": [1, 2], "1": "red", "d": "2024-01-02"}


def test_deep_nesting_past_orjsons_limit_takes_the_stdlib_path() -> None:
    value: Any = 1
    for _ in range(300):
        value = [value]
    assert FAST.dumps(value) == STDLIB.dumps(value)


@pytest.mark.parametrize("value", [
    Point(1),                        # orjson would write dataclasses; the rules refuse them
    object(),
    {"k": object()},
    "\ud800",                        # a lone surrogate has no UTF-8 form
    {(1, 2): "tuple key"},
])
def test_both_codecs_refuse_the_same_values(value: Any) -> None:
    with pytest.raises(errors.EncodeError):
        STDLIB.dumps(value)
    with pytest.raises(errors.EncodeError):
        FAST.dumps(value)


def test_float_spelling_may_differ_but_not_the_number() -> None:
    # The one documented difference in writing: some exponents are spelled differently.
    for value in (1e-7, 1e16, 1e22, 5e-324, 1.7976931348623157e308, 123456789.123):
        assert json.loads(FAST.dumps(value)) == json.loads(STDLIB.dumps(value)) == value


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5) | st.integers(), children, max_size=4),
    max_leaves=20,
)


def _refuse(constant: str) -> None:
    raise AssertionError(f"{constant} is not JSON")


def _same_json(a: bytes, b: bytes) -> bool:
    """Equal as JSON values (floats compared as numbers, NaN never appears)."""
    return json.loads(a) == json.loads(b)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_both_codecs_agree_on_any_value(value: Any) -> None:
    try:
        expected = STDLIB.dumps(value)
    except errors.EncodeError:
        with pytest.raises(errors.EncodeError):
            FAST.dumps(value)
        return
    got = FAST.dumps(value)
    assert _same_json(got, expected)
    json.loads(got, parse_constant=_refuse)  # strict JSON: no NaN or Infinity for Go to choke on
    got.decode("utf-8")


READ_CASES = [
    b'{"seq":1,"data":"x","f":1.5,"n":null,"b":[true,false]}',
    b'[1,-0,-0.0,1e-7,1.5e300]',
    b'"\\u00e9\\ud83d\\ude00"',
    b' {"a" : 1 , "a": 2} ',
    b'NaN',                       # orjson refuses it; the stdlib path reads it
    b'[1e400]',                   # the same
    b'"\\ud800"',                 # a lone surrogate escape: the same
    "{\"text\": \"str input\"}",
    b'18446744073709551615',
]


@pytest.mark.parametrize("data", READ_CASES, ids=range(len(READ_CASES)))
def test_both_codecs_read_the_same_values(data: Any) -> None:
    a, b = FAST.loads(data), STDLIB.loads(data)
    if isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b and type(a) is type(b)


@pytest.mark.parametrize("data", [b"", b"{", b"[1,]", b"\xff\xfe", b"{'a': 1}", b"nope"])
def test_both_codecs_refuse_the_same_text(data: bytes) -> None:
    with pytest.raises(ValueError):
        STDLIB.loads(data)
    with pytest.raises(ValueError):
        FAST.loads(data)


def test_integers_beyond_64_bits_read_as_numbers_of_equal_value() -> None:
    # The documented difference in reading: orjson gives a float, the stdlib an int.
    data = b"100000000000000000000"
    assert FAST.loads(data) == STDLIB.loads(data) == 10**20


def test_the_environment_can_ask_for_the_stdlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "_codec", None)
    monkeypatch.setenv(codec.JSON_ENV, "stdlib")
    assert codec.codec().name == "json"
    assert codec.dumps({"x": float("inf")}) == b'{"x":null}'
    monkeypatch.setattr(codec, "_codec", None)
    monkeypatch.delenv(codec.JSON_ENV)
    assert codec.codec().name == "orjson"


def test_an_idle_plugin_imports_no_codec_or_value_modules() -> None:
    # Their memory is paid only by a plugin that uses them (docs/performance.md).
    code = ("import sys, ekuiper_sdk.runtime.control; "
            "print(sorted(m for m in ('orjson', 'decimal', 'uuid', 'datetime') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
