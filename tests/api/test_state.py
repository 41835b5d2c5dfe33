"""``ctx.state``: persistence, atomic writes, limits, file naming and folder choice."""

from __future__ import annotations

import datetime
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from ekuiper_sdk import state
from ekuiper_sdk.runtime import protocol
from ekuiper_sdk.runtime.context import SymbolContext, instance_logger
from ekuiper_sdk.state import State, StateError, StateKey


def key(**changes: Any) -> StateKey:
    fields: dict[str, Any] = {"plugin": "p", "symbol": "src", "rule_id": "rule1", "op_id": "op1",
              "instance_id": 0, "func_id": None}
    fields.update(changes)
    return StateKey(**fields)


def test_values_round_trip_through_the_file(tmp_path: Path) -> None:
    s = State.for_key(key(), str(tmp_path))
    value = {"offset": 2**62, "f": 1.5, "s": "é", "b": b"\x00\xff", "none": None,
             "list": [1, "a", [True]], "nested": {"k": {"x": 1}, "1": 2}}
    s.update(value)
    again = State(s.path)
    assert dict(again) == value
    s["t"] = (1, 2)
    assert State(s.path)["t"] == [1, 2]  # documented: a tuple comes back as a list


def test_each_change_is_on_disk_when_the_call_returns(tmp_path: Path) -> None:
    s = State(str(tmp_path / "s.state"))
    s["a"] = 1
    assert State(s.path)["a"] == 1
    del s["a"]
    assert "a" not in State(s.path)
    s.update(a=1, b=2)
    s.clear()
    assert len(State(s.path)) == 0


def test_batch_writes_once_and_undoes_everything_on_error(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    s = State(str(tmp_path / "s.state"))
    writes: list[bytes] = []
    real_write = s._write

    def counting_write(blob: bytes) -> None:
        writes.append(blob)
        real_write(blob)

    monkeypatch.setattr(s, "_write", counting_write)
    with s.batch():
        for i in range(10):
            s[f"k{i}"] = i
    assert len(writes) == 1 and len(State(s.path)) == 10
    with pytest.raises(KeyError):
        with s.batch():
            s["k0"] = "changed"
            raise KeyError("boom")
    assert s["k0"] == 0 and State(s.path)["k0"] == 0


def test_a_value_msgpack_cannot_store_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    s = State(str(tmp_path / "s.state"))
    s["keep"] = 1
    with pytest.raises(StateError, match=r"cannot be stored: .*values may be None, bool"):
        s["when"] = datetime.datetime(2024, 1, 1)
    with pytest.raises(StateError):
        s["keep"] = object()
    assert dict(s) == {"keep": 1} and dict(State(s.path)) == {"keep": 1}
    with pytest.raises(StateError, match="key must be a str"):
        s[1] = "x"  # type: ignore[index]


def test_the_size_limit_is_enforced_with_a_clear_error(tmp_path: Path) -> None:
    s = State(str(tmp_path / "s.state"), key(), max_bytes=1000)
    s["small"] = "x" * 100
    with pytest.raises(StateError, match=r"state of 'src' \(rule 'rule1', op 'op1', "
                                         r"instance 0\) would take \d+ bytes; the limit is 1000"):
        s["big"] = "x" * 1000
    assert "big" not in s and "big" not in State(s.path)
    assert state.MAX_STATE_BYTES == 1024 * 1024


def test_a_failed_write_leaves_the_old_file_whole(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    s = State(str(tmp_path / "s.state"))
    s["offset"] = 1

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StateError, match="No space left on device.*EKUIPER_SDK_STATE_DIR"):
        s["offset"] = 2
    monkeypatch.undo()
    assert s["offset"] == 1 and State(s.path)["offset"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.state", "s.state.lock"]  # no temp


def test_an_unreadable_file_is_reported_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "s.state"
    path.write_bytes(b"\xc1 not msgpack")
    with pytest.raises(StateError, match="unreadable.*delete it"):
        State(str(path))
    path.write_bytes(b"\x93\x01\x02\x03")  # msgpack, but not a state file
    with pytest.raises(StateError, match="not a state file"):
        State(str(path))


def test_file_names_are_safe_and_distinct_for_odd_ids() -> None:
    names = {key(rule_id=r).file_name() for r in ("a/b", "a_b", "a b", "../x", "é", "a" * 300)}
    assert len(names) == 6
    for name in names:
        assert "/" not in name and len(name) < 255 and name.endswith(".state")
    assert key().file_name() != key(func_id=0).file_name()
    assert key().file_name() != key(symbol="other").file_name()
    assert key(instance_id=1).file_name() != key().file_name()


def test_folder_env_wins_then_the_set_folder_then_beside_main(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.delenv(state.STATE_DIR_ENV, raising=False)
    monkeypatch.setattr(state, "_default_dir", None)
    main = tmp_path / "plugin" / "main.py"
    main.parent.mkdir()
    main.write_text("")
    monkeypatch.setattr(sys.modules["__main__"], "__file__", str(main), raising=False)
    assert state.state_dir() == str(tmp_path / "plugin" / "state")
    state.set_default_dir(tmp_path / "chosen")
    assert state.state_dir() == str(tmp_path / "chosen")
    monkeypatch.setenv(state.STATE_DIR_ENV, str(tmp_path / "env"))
    assert state.state_dir() == str(tmp_path / "env")


def test_context_state_is_lazy_and_keyed_by_plugin_symbol_and_meta(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(state.STATE_DIR_ENV, str(tmp_path))
    meta = protocol.Meta("rule1", "op1", 2)
    ctx = SymbolContext(meta, instance_logger("p", meta, "src"), plugin="p", symbol="src")
    assert not tmp_path.joinpath("p").exists()
    ctx.state["offset"] = 7
    assert ctx.state is ctx.state
    again = SymbolContext(meta, instance_logger("p", meta, "src"), plugin="p", symbol="src")
    assert again.state["offset"] == 7
    func = SymbolContext(meta, instance_logger("p", meta, "src"), plugin="p", symbol="src",
                         func_id=0)
    assert "offset" not in func.state  # a function call site has a store of its own
    assert func.func_id == 0 and ctx.func_id == 0
