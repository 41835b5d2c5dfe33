"""Which part this process plays: the plugin in one process, a supervisor, or its worker.

Decided from the environment and the plugin's ``supervise`` option alone, so that a plugin
run as one process (the default) never imports the supervision modules and does not pay
their memory (docs/performance.md, "Memory").
"""

from __future__ import annotations

import os
from typing import Protocol

#: ``1`` runs the plugin supervised, ``0`` (or ``false``, ``no``, ``off``) as one process,
#: whatever the plugin's ``supervise`` option says.
SUPERVISE_ENV = "EKUIPER_SDK_SUPERVISE"
FALSE_WORDS = ("0", "false", "no", "off")
#: Set in a worker's environment to the URL of its supervisor's private channel.
WORKER_ENV = "EKUIPER_SDK_WORKER"


class Supervisable(Protocol):
    supervise: bool


def supervised(config: Supervisable) -> bool:
    """Whether ``config`` runs supervised: ``EKUIPER_SDK_SUPERVISE`` (``1``/``0``) when set,
    else its ``supervise`` (off by default: the supervisor and the spare worker are two more
    Python processes, docs/reliability.md, "What it costs").

    >>> from ekuiper_sdk.runtime.plugin import PluginConfig
    >>> supervised(PluginConfig("demo", supervise=False))
    False
    """
    env = os.environ.get(SUPERVISE_ENV, "").strip().lower()
    if env in ("1", "true", "yes", "on"):
        return True
    if env in FALSE_WORDS:
        return False
    return config.supervise


def is_worker() -> bool:
    """Whether a supervisor started this process as its worker."""
    return bool(os.environ.get(WORKER_ENV))
