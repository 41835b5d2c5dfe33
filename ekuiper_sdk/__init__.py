"""ekuiper-sdk: write eKuiper portable plugins in Python.

A plugin written for the official ``ekuiper`` package runs after changing only its import:
``from ekuiper_sdk import plugin, PluginConfig, Source, Sink, Function, Context``.
New code may use decorators instead: ``app = Plugin("name")``, ``@app.source(...)``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import plugin
from .api import Context, Function, Sink, Source
from .errors import (
    EkuiperSDKError,
    EncodeError,
    RecordError,
    SendTimeout,
    StateError,
    SymbolStopped,
)
from .plugin import PluginConfig

if TYPE_CHECKING:
    from .app import Plugin
    from .decorators.adapters import decode_records
    from .state import State

# The decorator API pulls in asyncio, inspect and hashlib: about 1.5 MiB that a plugin in
# the class style never needs on a small device. Its names are imported on first use.
_LAZY = {"Plugin": "app", "decode_records": "decorators.adapters", "State": "state"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["plugin", "PluginConfig", "Source", "Sink", "Function", "Context",
           "EkuiperSDKError", "EncodeError", "SendTimeout", "SymbolStopped",
           "Plugin", "decode_records", "RecordError", "State", "StateError"]
__version__ = "0.1.0"
