"""ekuiper-sdk: write eKuiper portable plugins in Python.

A plugin written for the official ``ekuiper`` package runs after changing only its import:
``from ekuiper_sdk import plugin, PluginConfig, Source, Sink, Function, Context``.
"""

from . import plugin
from .api import Context, Function, Sink, Source
from .channels import SendTimeout
from .plugin import PluginConfig
from .protocol import EncodeError
from .symbols import SymbolStopped

__all__ = ["plugin", "PluginConfig", "Source", "Sink", "Function", "Context",
           "EncodeError", "SendTimeout", "SymbolStopped"]
__version__ = "0.1.0"
