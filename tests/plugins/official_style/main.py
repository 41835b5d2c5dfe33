"""A test plugin written exactly as for the official ``ekuiper`` SDK (its pysam example's style).

The plugin's name comes from PLUGIN_NAME so that every test runs it on its own control
channel; the tests make a copy whose imports say ``ekuiper_sdk`` to run it on this SDK.
"""
import os

from ekuiper import PluginConfig, plugin
from filesink import FileSink
from funcs import aggSumIns, boomIns, nanIns, revertIns
from pyjson import PyJson

if __name__ == '__main__':
    c = PluginConfig(os.environ.get("PLUGIN_NAME", "official_style"),
                     {"pyjson": lambda: PyJson()},
                     {"file": lambda: FileSink()},
                     {"revert": lambda: revertIns, "agg_sum": lambda: aggSumIns,
                      "boom": lambda: boomIns, "nan": lambda: nanIns})
    plugin.start(c)
