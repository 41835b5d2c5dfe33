"""The names the host knows this plugin and its functions by, when they differ from the code's.

eKuiper names a plugin's control socket after the plugin (``/tmp/plugin_<name>.ipc``) and
each function's socket after the function (``/tmp/func_<symbol>.ipc``), machine-wide. A copy
of a plugin run beside the same plugin installed in eKuiper (``ekuiper-plugin run``, a test
host) would share both with it. With ``EKUIPER_SDK_NAME_SUFFIX=S`` in its environment the
runtime dials ``plugin_<name>S`` and serves each function at ``func_<symbol>S``, and maps the
host's ``<symbol>S`` back to the code's ``<symbol>`` as a command arrives, so everything
past the wire (look-ups, logs, supervision) uses the code's names. Source and sink sockets
are named after the rule, so their names never change.
"""

from __future__ import annotations

import os

from ..errors import ProtocolError

#: The environment variable a host sets to run this plugin under other socket names.
SUFFIX_ENV = "EKUIPER_SDK_NAME_SUFFIX"


def name_suffix() -> str:
    """The suffix from the environment, or ``""``; read on every call, so a test can set it.

    >>> os.environ[SUFFIX_ENV] = "_t1"; name_suffix()
    '_t1'
    >>> del os.environ[SUFFIX_ENV]
    """
    suffix = os.environ.get(SUFFIX_ENV, "")
    if "/" in suffix or "\x00" in suffix:
        raise ProtocolError(f"{SUFFIX_ENV}={suffix!r} cannot be part of a socket path; "
                            "use letters, digits and '_'")
    return suffix


def host_name(code_name: str) -> str:
    """The name the host uses for the plugin or one of its functions.

    >>> os.environ[SUFFIX_ENV] = "_t1"; host_name("revert")
    'revert_t1'
    >>> del os.environ[SUFFIX_ENV]
    """
    return code_name + name_suffix()


def code_name(host_symbol: str) -> str:
    """The code's name of a function the host names ``host_symbol``.

    >>> os.environ[SUFFIX_ENV] = "_t1"; code_name("revert_t1"), code_name("revert")
    ('revert', 'revert')
    >>> del os.environ[SUFFIX_ENV]
    """
    suffix = name_suffix()
    if suffix and host_symbol.endswith(suffix) and len(host_symbol) > len(suffix):
        return host_symbol[:-len(suffix)]
    return host_symbol
