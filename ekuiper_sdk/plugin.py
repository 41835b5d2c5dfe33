"""``PluginConfig`` and ``start``: the entry point of a plugin in the official SDK's style.

    from ekuiper_sdk import plugin, PluginConfig
    plugin.start(PluginConfig("pysam", {"pyjson": PyJson}, {"print": PrintSink},
                              {"revert": lambda: revert}))
"""

from __future__ import annotations

import json
import os
import sys

from .runtime.plugin_config import FunctionFactory, PluginConfig, SinkFactory, SourceFactory

__all__ = ["PluginConfig", "start", "SourceFactory", "SinkFactory", "FunctionFactory",
           "LIST_SYMBOLS_ENV"]

#: When this environment variable is set, ``start`` prints the plugin's symbols as one JSON
#: line on stdout and exits 0 without opening any socket (used by ``ekuiper-plugin validate``).
LIST_SYMBOLS_ENV = "EKUIPER_SDK_LIST_SYMBOLS"


def start(config: PluginConfig, argv: list[str] | None = None) -> None:
    """Run the plugin until the host goes away or the process is told to stop.

    ``argv`` defaults to ``sys.argv``; its second element is the host's JSON argument.
    """
    if os.environ.get(LIST_SYMBOLS_ENV):
        sys.stdout.write(json.dumps(config.symbol_names()) + "\n")
        sys.stdout.flush()
        raise SystemExit(0)
    from .runtime import supervisor

    supervisor.run(config, sys.argv if argv is None else argv)
