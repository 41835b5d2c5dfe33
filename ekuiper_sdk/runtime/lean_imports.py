"""pynng without its asyncio helper until something awaits a pynng socket.

``import pynng`` imports ``pynng._aio`` for its ``arecv``/``asend`` methods, and that
imports asyncio, ssl and sniffio: 8 MiB of an idle plugin's 22 (VmRSS of ``import pynng``
21.8 MiB, 13.8 MiB with the helper deferred, Python 3.11, pynng 0.9). The runtime never
awaits a socket (it waits in nng aio calls, :mod:`.nng_aio`), so the helper is put in
``sys.modules`` as a module whose code runs at its first attribute access: a plugin that
uses pynng's async methods itself gets them as before, at that moment.

``importlib.util.LazyLoader`` would be the standard tool, but the import system reads a
lazy module's ``__spec__`` when ``from . import _aio`` finds it in ``sys.modules``, which
loads it at once; a module with only a PEP 562 ``__getattr__`` is never touched there.
Nothing is done when pynng is already imported or its layout is not the one expected.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import threading
from typing import Any

DEFERRED = "pynng._aio"


def defer_pynng_asyncio() -> bool:
    """Put pynng's asyncio helper off until it is used; True when it was.

    Called once, by ``ekuiper_sdk.runtime`` as it is imported::

        defer_pynng_asyncio()   # then: import pynng -> no asyncio in sys.modules
    """
    if "pynng" in sys.modules or DEFERRED in sys.modules:
        return False
    package = importlib.util.find_spec("pynng")
    places = package.submodule_search_locations if package is not None else None
    spec = importlib.machinery.PathFinder.find_spec(DEFERRED, list(places or ()))
    if spec is None or spec.loader is None:
        return False
    module = importlib.util.module_from_spec(spec)
    loader, lock = spec.loader, threading.Lock()

    def load_then_get(name: str) -> Any:
        with lock:  # two threads reaching it at once run its code once
            if module.__dict__.pop("__getattr__", None) is not None:
                loader.exec_module(module)
        return getattr(module, name)

    module.__getattr__ = load_then_get  # type: ignore[method-assign]
    sys.modules[DEFERRED] = module
    return True
