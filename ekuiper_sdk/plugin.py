"""``PluginConfig`` and ``start``: the entry point of a plugin in the official SDK's style.

    from ekuiper_sdk import plugin, PluginConfig
    plugin.start(PluginConfig("pysam", {"pyjson": PyJson}, {"print": PrintSink},
                              {"revert": lambda: revert}))

Both are defined in :mod:`ekuiper_sdk.runtime.plugin` (the official SDK's
``ekuiper.runtime.plugin``).
"""

from __future__ import annotations

from .runtime.plugin import (
    LIST_SYMBOLS_ENV,
    FunctionFactory,
    PluginConfig,
    SinkFactory,
    SourceFactory,
    start,
)

__all__ = ["PluginConfig", "start", "SourceFactory", "SinkFactory", "FunctionFactory",
           "LIST_SYMBOLS_ENV"]
