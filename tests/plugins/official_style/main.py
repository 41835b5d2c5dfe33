"""A test plugin written exactly as for the official ``ekuiper`` SDK (its pysam example's style).

The plugin's name comes from PLUGIN_NAME and its function names end with FUNCTION_SUFFIX,
so that tests running at once never share a socket in /tmp; the tests make a copy whose
imports say ``ekuiper_sdk`` to run it on this SDK.
"""
import os

from ekuiper import PluginConfig, plugin
from filesink import FileSink
from funcs import aggSumIns, boomIns, nanIns, revertIns
from pyjson import PyJson

if __name__ == '__main__':
    suffix = os.environ.get("FUNCTION_SUFFIX", "")
    c = PluginConfig(os.environ.get("PLUGIN_NAME", "official_style"),
                     {"pyjson": lambda: PyJson()},
                     {"file": lambda: FileSink()},
                     {"revert" + suffix: lambda: revertIns, "agg_sum" + suffix: lambda: aggSumIns,
                      "boom" + suffix: lambda: boomIns, "nan" + suffix: lambda: nanIns})
    plugin.start(c)
