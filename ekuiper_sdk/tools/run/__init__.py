"""``ekuiper-plugin run``: a plugin folder run like a small rule under the built-in host.

:func:`~.pipeline.run_pipeline` is the engine (:mod:`.pipeline`), fed by what the command
line gives (:mod:`.inputs`: key=value properties, SQL-like arguments, JSON lines) and
showing the plugin's output by log level (:mod:`.plugin_log`). Unlike the rest of the
tools it loads the test host, and with it the socket library, when it runs.
"""
