"""What the test host does differently for each eKuiper generation (``ekuiper_sdk.hosts``).

:class:`~ekuiper_sdk.testing.PluginHost` takes a ``generation`` (default: the newest) and
asks this module, at the few points where the generations differ:

- a control answer starting with ``h``: 2.1.3 and later send the command again, older
  hosts take it for the answer (``receive error: handshake``);
- whether a sink's frames wait for acks: ``requireAck`` (a bool, or the rule fails to
  start) on 2.x, ``requiredACKs`` as a Go int on 1.x; a number written in a rule's JSON
  is a Go float64 there, so pass ``1.0`` to play a rule's ``"requiredACKs": 1``;
- 1.x starts the plugin process when a symbol is first started, and kills it one second
  after the last source or sink stops while no function was started;
- 1.x leaves a sink's ack socket open when its rule stops, so the same rule's sink cannot
  start again (``address in use``) until the host closes;
- 1.x frames a batch (``batchSize``, ``lingerInterval``) as rows with no batching
  (``SinkHandle.send_rows``, through ``HostGeneration.frames_batches``).

All of these were seen on real v1.14.7 and v2.1.2 servers (docs/protocol.md, "Host
generations").

Example::

    from ekuiper_sdk import hosts
    host = PluginHost("pysam", "pysam.py", generation=hosts.V1)
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Callable

from ..errors import HostError
from ..hosts import V2, HostGeneration

DEFAULT = V2
#: How long a 1.x host waits after the last stop before it kills the plugin process.
LAZY_STOP_DELAY_S = 1.0


def resends_after(generation: HostGeneration, answer: bytes) -> bool:
    """Whether the host sends the same command again after this control answer."""
    return answer[:1] == b"h" and generation.skips_keepalives


def sink_reads_acks(generation: HostGeneration, config: Mapping[str, Any] | None) -> bool:
    """Whether the host waits for an ack after each frame; raises as the host would.

    >>> from ekuiper_sdk.hosts import V1
    >>> sink_reads_acks(V1, {"requiredACKs": 1}), sink_reads_acks(V1, {"requiredACKs": 1.0})
    (True, False)
    """
    config = config or {}
    if generation.ack_property == "requiredACKs":
        value = config.get("requiredACKs")
        # The 1.x host asserts a Go int; a float64 (any number from a rule's JSON) is not.
        return isinstance(value, int) and not isinstance(value, bool) and value > 0
    reads = False
    for key, value in config.items():
        # The 2.x host reads requireAck with mapstructure: any key case, a bool or nothing.
        if isinstance(key, str) and key.casefold() == "requireack" and value is not None:
            if not isinstance(value, bool):
                raise HostError(f"1 error(s) decoding:\n\n* '{key}' expected type 'bool', "
                                f"got unconvertible type '{type(value).__name__}'")
            reads = value
    return reads


class LazyStop:
    """A 1.x host kills the plugin process a second after the last source or sink stops
    (functions never stop, so a started function keeps it running)."""

    def __init__(self, stop_if_idle: Callable[[], None]) -> None:
        self._stop_if_idle = stop_if_idle
        self._timer: threading.Timer | None = None

    def schedule(self) -> None:
        self.cancel()
        self._timer = threading.Timer(LAZY_STOP_DELAY_S, self._stop_if_idle)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
