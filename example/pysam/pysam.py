"""The pysam example plugin: a pyjson source, a revert function and a print sink.

Written in the official SDK's class style; run it under the built-in host with
``ekuiper-plugin run example/pysam``.
"""

from print_sink import PrintSink
from pyjson import PyJson
from revert import revert

from ekuiper_sdk import PluginConfig, plugin

if __name__ == "__main__":
    plugin.start(PluginConfig("pysam", {"pyjson": PyJson}, {"print": PrintSink},
                              {"revert": lambda: revert}))
