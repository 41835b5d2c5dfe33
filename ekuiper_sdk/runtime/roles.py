"""Which part this process plays, decided once: the plugin in one process, a supervisor,
or a supervisor's worker.

Decided from the environment and the plugin's ``supervise`` option alone, with nothing
imported but the standard library: ``plugin.start`` asks :func:`decide`, then imports
``supervision/`` only for the two supervised parts, so that a plugin run as one process
(the default) never imports a supervision module and does not pay their memory
(docs/performance.md, "Memory").
"""

from __future__ import annotations

import enum
import os
import sys
from dataclasses import dataclass
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


def worker_command(argv: list[str]) -> list[str] | None:
    """The command line that runs this plugin's script again, or None when there is none.

    ``sys.orig_argv`` (Python 3.10+) repeats the interpreter's options and ``-m``; before
    that, the script in ``argv[0]`` is run with ``-u`` as eKuiper runs it.
    """
    orig = getattr(sys, "orig_argv", None)
    if orig and len(orig) > 1 and orig[1] not in ("-c",) and sys.argv[0] not in ("-c", ""):
        return [sys.executable, *orig[1:]]
    if argv and argv[0] and argv[0] != "-c" and os.path.exists(argv[0]):
        return [sys.executable, "-u", *argv]
    return None


class Part(enum.Enum):
    ONE_PROCESS = "one process"
    SUPERVISOR = "supervisor"
    WORKER = "worker"


@dataclass(frozen=True)
class Decision:
    """The part, with what it needs: a worker's channel URL, a supervisor's worker command."""

    part: Part
    worker_url: str = ""
    command: tuple[str, ...] = ()


def decide(config: Supervisable, argv: list[str]) -> Decision:
    """The part this process plays; a worker's URL is taken out of the environment, so
    that a process the plugin's code starts is not taken for a worker too.

    >>> from ekuiper_sdk.runtime.plugin import PluginConfig
    >>> decide(PluginConfig("demo"), ["main.py"]).part
    <Part.ONE_PROCESS: 'one process'>
    """
    url = os.environ.pop(WORKER_ENV, "")
    if url:
        return Decision(Part.WORKER, worker_url=url)
    command = worker_command(argv) if supervised(config) else None
    if command is None:  # supervised, but no script to run again: served as one process
        return Decision(Part.ONE_PROCESS)
    return Decision(Part.SUPERVISOR, command=tuple(command))
