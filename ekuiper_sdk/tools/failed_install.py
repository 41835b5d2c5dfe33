"""An install that fails says why in one line and leaves nothing behind on the server.

When eKuiper's install of a zip fails after unpacking it (``install.sh`` failed, or the
plugin never answered its handshake), eKuiper removes the files it unpacked but keeps the
zip's folders in ``plugins/portable/<name>/`` and the copies of its ``sources|sinks|
functions`` files in ``etc/`` (seen on v2.4), and warns about both at every start. Here the
failure is followed by a sweep (``server_script.sweep_leftovers``) that removes them, and the
reason install.sh gave, buried in eKuiper's answer after pip's output, becomes the message.

Example::

    result = install_cleanly(RestClient("http://127.0.0.1:9081"), "demo.zip")
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import IO, Any

from ..errors import RestError
from .manifest import KINDS, read_zip_manifest
from .rest import InstallResult, RestClient, install_zip
from .server_script import install_sh_reason, sweep_leftovers

#: eKuiper's words for a failure after the zip was unpacked (manager.go's Register).
UNPACKED_FAILURE = "fail to install plugin"


def kind_files(zip_path: Path) -> list[str]:
    """The zip's ``sources/``, ``sinks/`` and ``functions/`` files, which eKuiper copies to
    ``etc/``.

    >>> kind_files(Path("demo.zip"))                                # doctest: +SKIP
    ['functions/demo_upper.json', 'sources/demo_counter.yaml']
    """
    with zipfile.ZipFile(zip_path) as zf:
        return sorted(n for n in zf.namelist()
                      if n.split("/", 1)[0] in KINDS and not n.endswith("/"))


def install_cleanly(client: RestClient, zip_path: str | Path, *, update: bool = False,
                    via: str = "auto", name: str | None = None, log: IO[str] | None = None,
                    **options: Any) -> InstallResult:
    """``rest.install_zip``; when eKuiper fails the install after unpacking, what it left is
    removed and the ``RestError`` says why in one line (and what was cleaned, or what to
    delete by hand when the sweep could not run)."""
    try:
        return install_zip(client, zip_path, update=update, via=via, name=name, log=log,
                           **options)
    except RestError as exc:
        if UNPACKED_FAILURE not in exc.message:
            raise
        path = Path(zip_path)
        plugin = read_zip_manifest(path, name).name
        reason = install_sh_reason(exc.message)
        # The templates, not the worded text: the caller words the parameters they name.
        message, hint = (reason, "") if reason is not None else (exc.template,
                                                                 exc.hint_template)
        leftovers = [f"plugins/portable/{plugin}/"] + [f"etc/{f}" for f in kind_files(path)]
        if sweep_leftovers(client, plugin, kind_files(path), via=via, log=log):
            note = "what the failed install left on the server is removed"
        else:
            note = ("eKuiper left files behind; delete them in its folder: "
                    + " ".join(leftovers))
        hint = f"{hint}; {note}" if hint else note
        raise RestError(message, exc.status, hint) from None
