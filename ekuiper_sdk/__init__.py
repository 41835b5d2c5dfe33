"""ekuiper-sdk: write eKuiper portable plugins in Python.

A plugin written for the official ``ekuiper`` package runs after changing only its import:
``from ekuiper_sdk import plugin, PluginConfig, Source, Sink, Function, Context``.
New code may use decorators instead: ``app = Plugin("name")``, ``@app.source(...)``.
"""

from . import plugin
from .adapters import decode_records
from .api import Context, Function, Sink, Source
from .app import Plugin
from .channels import SendTimeout
from .plugin import PluginConfig
from .protocol import EncodeError
from .records import RecordError
from .state import State, StateError
from .symbols import SymbolStopped

__all__ = ["plugin", "PluginConfig", "Source", "Sink", "Function", "Context",
           "EncodeError", "SendTimeout", "SymbolStopped",
           "Plugin", "decode_records", "RecordError", "State", "StateError"]
__version__ = "0.1.0"
