"""Run and test eKuiper portable plugins without eKuiper, or on a real one.

- :class:`PluginHost` (:mod:`.host`) plays eKuiper's side of the portable-plugin protocol
  as the Go host does; its handles (:mod:`.handles`) start, feed and stop sources, sinks
  and functions over real IPC sockets, with Go's JSON rules (:mod:`.gojson`) and the
  source configuration eKuiper builds (:mod:`.source_config`).
- :func:`replay` (:mod:`.replay`) replays a fixture ``ekuiper-plugin record`` took on a
  real eKuiper, and :func:`assert_snapshot` (:mod:`.snapshot`) compares what came out with
  a stored snapshot.
- :class:`RealEkuiper` (:mod:`.real`) does the same things on a running eKuiper server.

Example::

    from ekuiper_sdk.testing import PluginHost

    with PluginHost("pysam", "plugins/pysam/pysam.py") as host:
        assert host.function("revert").call("abc") == "cba"
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import (
    FunctionError,
    HostError,
    InvalidFrameError,
    RealEkuiperError,
    SinkAckError,
    SocketNameWarning,
    SourceConfigWarning,
)
from ..tools.fixture import Fixture, FixtureError, frame_bytes, frame_records, read_fixture
from .gojson import FuncReply, SourceTuple, decode_source_frame, go_json_dumps
from .handles import FunctionHandle, SinkHandle, SourceHandle
from .host import PluginHost
from .replay import Outcome, Replay, replay
from .snapshot import SnapshotMismatch, assert_snapshot
from .waiting import wait_for

if TYPE_CHECKING:
    from ..tools.run.pipeline import run_pipeline
    from .real import Capture, RealEkuiper

__all__ = [
    "PluginHost", "SourceHandle", "SinkHandle", "FunctionHandle", "SourceTuple", "FuncReply",
    "HostError", "InvalidFrameError", "SinkAckError", "FunctionError",
    "SourceConfigWarning", "SocketNameWarning", "RealEkuiperError", "run_pipeline",
    "replay", "Replay", "Outcome", "assert_snapshot", "SnapshotMismatch", "Fixture",
    "FixtureError", "read_fixture", "frame_bytes", "frame_records",
    "go_json_dumps", "decode_source_frame", "wait_for", "RealEkuiper", "Capture",
]


def __getattr__(name: str) -> Any:
    # The real-eKuiper mode loads the packing tools: only for the tests that use it.
    if name in ("RealEkuiper", "Capture"):
        from . import real

        return getattr(real, name)
    if name == "run_pipeline":
        # Where it was before it moved to the tools (the engine of `ekuiper-plugin run`),
        # so that tests written for it still import it from here.
        from ..tools.run.pipeline import run_pipeline

        return run_pipeline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
