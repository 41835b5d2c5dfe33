"""Sink frames turned into records, by mode, format and template."""

from __future__ import annotations

from typing import Any

import pytest

from ekuiper_sdk.decorators.records import RecordDecoder, check_mode
from ekuiper_sdk.errors import RecordError

ARRAY = b'[{"a":1},{"a":2}]'
OBJECT = b'{"a":1}'
BATCHED = b'[[{"n":1}],[{"n":2}],[{"n":3}]]'


@pytest.mark.parametrize("mode, frame, calls", [
    ("each", ARRAY, [{"a": 1}, {"a": 2}]),
    ("each", OBJECT, [{"a": 1}]),
    ("each", b"[]", []),
    ("list", ARRAY, [[{"a": 1}, {"a": 2}]]),
    ("list", OBJECT, [[{"a": 1}]]),
    ("list", b"[]", [[]]),
    ("bytes", ARRAY, [ARRAY]),
    ("bytes", OBJECT, [OBJECT]),
    # batchSize or lingerInterval without sendSingle, as a real eKuiper sends them
    ("each", BATCHED, [{"n": 1}, {"n": 2}, {"n": 3}]),
    ("list", BATCHED, [[{"n": 1}, {"n": 2}, {"n": 3}]]),
    ("bytes", BATCHED, [BATCHED]),
    ("each", b'[[{"n":1},{"n":2}],[],[{"n":3}]]', [{"n": 1}, {"n": 2}, {"n": 3}]),
])
def test_modes(mode: str, frame: bytes, calls: Any) -> None:
    assert RecordDecoder({}, mode).decode(frame) == calls  # type: ignore[arg-type]


def test_scalars_pass_as_one_record() -> None:
    assert RecordDecoder({}).decode(b'"text"') == ["text"]
    assert RecordDecoder({}).decode(b"[1, null]") == [1, None]


@pytest.mark.parametrize("config", [
    {"format": "delimited"}, {"format": "binary"}, {"format": "protobuf"},
    {"format": "custom", "sendSingle": True},
])
def test_formats_other_than_json_give_bytes_in_every_mode(config: dict[str, Any]) -> None:
    for mode in ("each", "list", "bytes"):
        decoder = RecordDecoder(config, mode)
        assert decoder.decode(b'{"a":1}') == [b'{"a":1}']


def test_format_is_case_insensitive_and_defaults_to_json() -> None:
    assert RecordDecoder({"format": "JSON"}).decode(OBJECT) == [{"a": 1}]
    assert RecordDecoder({"format": ""}).decode(OBJECT) == [{"a": 1}]
    assert RecordDecoder({"format": None}).decode(OBJECT) == [{"a": 1}]


def test_a_frame_that_is_not_json_names_the_fix() -> None:
    with pytest.raises(RecordError, match=r"not JSON .*records='bytes'"):
        RecordDecoder({}).decode(b"hello")
    with pytest.raises(RecordError):
        RecordDecoder({}).decode(b"\xff\xfe")


def test_a_template_that_renders_text_gives_bytes_and_json_stays_decoded() -> None:
    config = {"dataTemplate": "temp is {{.t}}"}
    assert RecordDecoder(config).decode(b"temp is 21") == [b"temp is 21"]
    assert RecordDecoder(config).decode(b'{"t": 21}') == [{"t": 21}]
    assert RecordDecoder({"dataTemplate": "  "}).decode(OBJECT) == [{"a": 1}]


def test_unknown_mode_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="use 'each', 'list' or 'bytes'"):
        check_mode("batch")
    with pytest.raises(ValueError):
        RecordDecoder({}, "single")  # type: ignore[arg-type]
