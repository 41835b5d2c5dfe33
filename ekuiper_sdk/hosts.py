"""The generations of eKuiper hosts still in the field, and what each reads and offers.

One table, consulted by the plugin runtime (what it may send to a host it cannot tell
apart from the others), the test host (to behave like each generation) and the tools
(what a server's REST API offers). docs/deploy.md, "eKuiper versions", lists them.

A plugin cannot learn which generation started it: the argument (``{"sendTimeout":1000}``)
and the start commands are the same in every version (docs/protocol.md, "Host
generations"). So the runtime keeps to what *every* generation reads correctly, through
:func:`every_host_skips_keepalives` and :func:`any_host_reads_acks`; a leaf module, so
the runtime and the tools can both import it (it imports nothing of the SDK).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Version = tuple[int, int, int]


@dataclass(frozen=True)
class HostGeneration:
    """eKuiper versions from ``first`` (inclusive) that behave alike towards a plugin.

    >>> generation_of("1.14.7").ack_property
    'requiredACKs'
    """

    name: str
    first: Version
    #: Its control channel's ``SendCmd`` skips an answer starting with ``h`` (a queued
    #: keepalive) and reads the next; an older one takes it for the command's answer.
    skips_keepalives: bool
    #: The sink property that makes the host wait for one ack after each frame.
    ack_property: str
    #: The plugin process starts when a rule first uses it, not at install or boot, and
    #: is killed a second after the last rule using it stops.
    lazy_start: bool
    #: ``GET /plugins/portables/{name}/status`` exists.
    status_route: bool
    #: The sink's ack socket is closed when its rule stops; when not (eKuiper #3156),
    #: the rule cannot start again until eKuiper restarts ("address in use").
    closes_ack_socket: bool
    #: A sink with ``batchSize`` or ``lingerInterval`` gets a batch as one frame (each row
    #: in a list of its own unless ``sendSingle``); when not (seen on v1.14.7), the batch
    #: is framed as unbatched rows are: one array, or each row alone with ``sendSingle``.
    frames_batches: bool = True

    def reads_acks(self, config: Mapping[str, Any]) -> bool:
        """Whether this host waits for an ack after each frame of a sink with ``config``.

        >>> V1.reads_acks({"requiredACKs": 1}), V2.reads_acks({"requiredACKs": 1})
        (True, False)
        """
        value = config.get(self.ack_property)
        if self.ack_property == "requireAck":
            return value is True
        # A 1.x host reads acks when the property is a Go int above 0 (a bool is not one).
        return isinstance(value, int) and not isinstance(value, bool) and value > 0


#: 1.14.x, the last 1.x line.
V1 = HostGeneration("1.x", (1, 0, 0), skips_keepalives=False, ack_property="requiredACKs",
                    lazy_start=True, status_route=False, closes_ack_socket=False,
                    frames_batches=False)
#: 2.0.0 to 2.1.2: v2's REST API and acks, the 1.x control channel.
V2_EARLY = HostGeneration("2.0-2.1.2", (2, 0, 0), skips_keepalives=False,
                          ack_property="requireAck", lazy_start=False, status_route=True,
                          closes_ack_socket=True)
#: 2.1.3 and later, up to today's master.
V2 = HostGeneration("2.1.3+", (2, 1, 3), skips_keepalives=True, ack_property="requireAck",
                    lazy_start=False, status_route=True, closes_ack_socket=True)

GENERATIONS = (V1, V2_EARLY, V2)


def parse_version(text: str) -> Version | None:
    """The release a version text names: ``1.14.7``, ``v2.1.2``, ``2.4.0-27-g0014e7fab``.

    >>> parse_version("v2.4.0-27-g0014e7fab"), parse_version("master")
    ((2, 4, 0), None)
    """
    found = re.match(r"\s*v?(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if found is None:
        return None
    major, minor, patch = found.groups()
    return int(major), int(minor), int(patch or 0)


def generation_of(version: str) -> HostGeneration:
    """The generation of a version text; an unreadable one is taken as the newest.

    >>> generation_of("2.1.2").name, generation_of("2.1.3").name
    ('2.0-2.1.2', '2.1.3+')
    """
    release = parse_version(version)
    if release is None:
        return V2
    found = V1
    for generation in GENERATIONS:
        if release >= generation.first:
            found = generation
    return found


def every_host_skips_keepalives() -> bool:
    """Whether an unasked ``handshake`` on the control channel is safe on every host.

    It is not: before 2.1.3 the host reads the queued keepalive as the answer to its next
    command and the rule fails with ``receive error: handshake``.
    """
    return all(generation.skips_keepalives for generation in GENERATIONS)


def any_host_reads_acks(config: Mapping[str, Any]) -> bool:
    """Whether some generation waits for acks from a sink started with ``config``.

    A plugin cannot tell which one runs it, so it acks when any would read them, and
    stops when the frames show that this one does not (runtime/sink.py).

    >>> any_host_reads_acks({"requireAck": True}), any_host_reads_acks({})
    (True, False)
    """
    return any(generation.reads_acks(config) for generation in GENERATIONS)
