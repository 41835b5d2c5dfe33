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

#: When this environment variable is set, ``start`` prints the plugin's symbols (and, under
#: ``metadata``, what its code says about them: see :mod:`ekuiper_sdk.metadata`) as one JSON
#: line on stdout and exits 0 without opening any socket (used by ``ekuiper-plugin validate``
#: and ``pack``).
LIST_SYMBOLS_ENV = "EKUIPER_SDK_LIST_SYMBOLS"


def start(config: PluginConfig, argv: list[str] | None = None) -> None:
    """Run the plugin until the host goes away or the process is told to stop.

    ``argv`` defaults to ``sys.argv``; its second element is the host's JSON argument.
    """
    if os.environ.get(LIST_SYMBOLS_ENV):
        listing = dict(config.symbol_names())
        try:
            from .metadata import describe

            listing["metadata"] = describe(config)
        except Exception as exc:  # noqa: BLE001 - the symbols are still listed
            listing["metadata_error"] = f"{type(exc).__name__}: {exc}"
        sys.stdout.write(json.dumps(listing, default=str) + "\n")
        sys.stdout.flush()
        raise SystemExit(0)
    from .runtime.control import PluginRuntime

    PluginRuntime(config, sys.argv if argv is None else argv).serve_forever()
