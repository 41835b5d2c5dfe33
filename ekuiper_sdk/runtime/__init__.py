"""The plugin runtime: everything between eKuiper's sockets and the plugin's code.

Data flows one way, each step in a module of its own: a host frame arrives on a socket
(:mod:`.channels`), is decoded with no I/O (:mod:`.protocol`, :mod:`.codec`), and reaches
the running instance (:mod:`.source`, :mod:`.sink`, :mod:`.function`, over :mod:`.runner`)
that calls the plugin's code with a :mod:`.context`; answers go back the same way.
:mod:`.control` serves the control channel and owns the instances.

The rules these modules keep: a socket is used and closed by one thread at a time; the
control thread never waits on user code beyond a bounded ``configure``; every answer to
the host is one readable line. Nothing here imports the decorator API, the test hosts or
the tools. ``ekuiper_sdk.runtime.context.Context`` is also where the official SDK's
``ekuiper.runtime.context.Context`` is found.
"""

from .lean_imports import defer_pynng_asyncio

# Before any module here imports pynng (the memory it saves: lean_imports).
defer_pynng_asyncio()

