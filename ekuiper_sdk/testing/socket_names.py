"""Which socket names a test host may use beside a live eKuiper, and which files it may remove.

A plugin's control socket (``/tmp/plugin_<name>.ipc``) and its functions' sockets
(``/tmp/func_<symbol>.ipc``) are machine-wide. When an eKuiper on this machine has the
plugin installed, it listens on both, and a host that binds over them, or removes their
files, cuts eKuiper off from its own plugin until eKuiper restarts. So the host:

- asks whether a socket file is live by connecting to it (nothing is sent), before it
  listens and before it removes anything;
- removes only a file nobody answers on, and only one of the names it used itself;
- runs a plugin of this SDK whose names are taken under a suffix
  (``EKUIPER_SDK_NAME_SUFFIX``, honoured by the runtime: ``ekuiper_sdk.runtime.names``),
  so both copies keep working, and says so in one :class:`SocketNameWarning`.
"""

from __future__ import annotations

import os
import random
import socket
import stat
import warnings
from collections.abc import Sequence

from ..errors import HostError, SocketNameWarning
from ..runtime.names import SUFFIX_ENV

__all__ = ["SUFFIX_ENV", "live_socket", "remove_stale_socket", "choose_suffix",
           "declared_functions", "honours_suffix"]


def live_socket(path: str) -> bool:
    """Whether a process listens on the Unix socket file ``path`` (connecting tells).

    >>> live_socket("/tmp/no-such-socket-file.ipc")
    False
    """
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def remove_stale_socket(path: str) -> None:
    """Remove ``path`` if it is a socket file nobody listens on; never a live one."""
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode) or live_socket(path):
            return
        os.unlink(path)
    except OSError:
        pass


def declared_functions(executable: str) -> list[str]:
    """The functions the manifest beside ``executable`` declares (none when it has none)."""
    from ..errors import PackagingError
    from ..tools.manifest import find_manifest, load_manifest

    try:
        manifest, _ = load_manifest(find_manifest(os.path.dirname(executable)))
    except PackagingError:
        return []
    return list(manifest.functions) if manifest is not None else []


def honours_suffix(executable: str, language: str) -> bool:
    """Whether the plugin runs on this SDK, whose runtime honours ``EKUIPER_SDK_NAME_SUFFIX``.

    A plugin on the official ``ekuiper`` package would dial eKuiper's own control socket
    instead, so only a script that imports ``ekuiper_sdk`` (itself or through the
    launcher of a vendored plugin) is renamed.
    """
    if language != "python":
        return False
    try:
        with open(executable, encoding="utf-8", errors="replace") as script:
            return "ekuiper_sdk" in script.read(1 << 20)
    except OSError:
        return False


def taken_paths(plugin: str, functions: Sequence[str]) -> list[str]:
    """The plugin's control and function socket files that a live process listens on."""
    paths = [f"/tmp/plugin_{plugin}.ipc", *(f"/tmp/func_{f}.ipc" for f in functions)]
    return [path for path in paths if live_socket(path)]


def choose_suffix(plugin: str, executable: str, language: str, rename: bool | str | None,
                  functions: Sequence[str]) -> str:
    """The suffix to run the plugin under: ``""`` for its own names.

    ``rename`` is a suffix to use, True for a new one, False for never, None (the default)
    for a new one only when a live listener holds one of the plugin's names.
    """
    if isinstance(rename, str):
        if not rename or "/" in rename or "\x00" in rename:
            raise ValueError(f"rename={rename!r} cannot be part of a socket path")
        return rename
    taken = [] if rename else taken_paths(plugin, functions)
    if rename is False or (rename is None and not taken):
        if taken:
            raise HostError(_held(plugin, taken) + "; stop that one, or let the host run this "
                            "copy under another name (rename=None)")
        return ""
    if not honours_suffix(executable, language):
        if not taken:
            raise HostError(f"plugin {plugin} does not use ekuiper_sdk, so it cannot be run "
                            "under another name")
        raise HostError(_held(plugin, taken) + f"; plugin {plugin} does not use ekuiper_sdk, "
                        "so it cannot run beside it under another name: stop that one first")
    suffix = f"_run{os.getpid()}{random.getrandbits(16):04x}"
    if taken:
        renamed = ", ".join(f + suffix for f in functions)
        warnings.warn(SocketNameWarning(
            f"{_held(plugin, taken)}; running this copy as plugin {plugin}{suffix}"
            + (f" (functions {renamed})" if renamed else "") + ", so both keep working"),
            stacklevel=3)
    return suffix


def _held(plugin: str, taken: Sequence[str]) -> str:
    return (f"{', '.join(taken)} {'is' if len(taken) == 1 else 'are'} held by a live listener "
            f"(an eKuiper with plugin {plugin} installed, or another run)")
