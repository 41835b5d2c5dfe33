"""Compare a test's value with a snapshot stored beside the test, as JSON; rewrite the
snapshot instead when asked (``pytest --snapshot-update``, or ``EKUIPER_SNAPSHOT_UPDATE=1``).

A few lines of our own rather than a snapshot plugin: the values here are JSON (what a
replay gives), the snapshot is a JSON file a reviewer reads in a diff, and the same call
works outside pytest.

Example::

    assert_snapshot(replay(fixture, plugin).outputs(), "tests/snapshots/demo.json")
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any, Union

#: The environment variable that makes :func:`assert_snapshot` rewrite snapshots; the
#: pytest option ``--snapshot-update`` sets it for the session.
UPDATE_ENV = "EKUIPER_SNAPSHOT_UPDATE"
PathLike = Union[str, "os.PathLike[str]"]


class SnapshotMismatch(AssertionError):
    """The value differs from its snapshot; the message is the diff and how to update."""


def _text(value: Any) -> str:
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    except (TypeError, ValueError) as exc:
        raise TypeError(f"a snapshot holds JSON values: {exc}") from None


def assert_snapshot(value: Any, path: PathLike, *, update: bool | None = None) -> None:
    """Fail with a diff unless ``value`` equals the snapshot at ``path``.

    With ``update`` (default: ``EKUIPER_SNAPSHOT_UPDATE`` is set to ``1``), write the
    snapshot instead. A missing snapshot fails, saying how to write it.
    """
    target = Path(path)
    text = _text(value)
    if update is None:
        update = os.environ.get(UPDATE_ENV, "") not in ("", "0")
    if update:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
        return
    how = f"run pytest --snapshot-update (or set {UPDATE_ENV}=1) to write it"
    if not target.exists():
        raise SnapshotMismatch(f"no snapshot {target}: {how}")
    stored = target.read_text(encoding="utf-8")
    if stored != text:
        diff = "".join(difflib.unified_diff(stored.splitlines(True), text.splitlines(True),
                                            f"{target} (stored)", "the value now"))
        raise SnapshotMismatch(f"{target} differs from the value ({how} if the change is "
                               f"right):\n{diff}")
