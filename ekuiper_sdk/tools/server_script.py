"""Run a short shell script on an eKuiper server, through its REST API alone.

eKuiper runs a plugin zip's ``install.sh`` (with ``/bin/sh``, in the plugin's folder, with
the server's environment) and, when the script fails, answers the install with the
script's stdout and stderr, then removes the files it unpacked and the plugin's folder,
if empty, and forgets the plugin (per eKuiper's source, ``internal/plugin/portable/
manager.go``; seen on v2.4). So a zip whose ``install.sh`` does its work and then exits 1
runs that work on the server and leaves nothing registered. ``doctor`` asks a server what it
offers this way, and a failed install's leftovers are removed this way.

Such a zip holds no folder, only three root files, so eKuiper's clean-up removes all of it.

Example::

    out = run_script(RestClient("http://127.0.0.1:9081"), "probe_1a2b", "uname -m")
    print(out.stdout)
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import RestError
from .archive import ZipEntry, zip_bytes
from .rest import RestClient, install_zip

#: Printed by every such script last, so that its own failure tells apart from eKuiper's.
DONE_MARK = "ekuiper-plugin-script-done"
_OUTPUT_RE = re.compile(r"err:exit status (\d+) stdout:(.*?) stderr:(.*)\Z", re.DOTALL)


@dataclass(frozen=True)
class ScriptOutput:
    """What the script printed on the server."""

    stdout: str
    stderr: str


def install_sh_output(message: str) -> tuple[int, str, str] | None:
    """The exit status, stdout and stderr of ``install.sh`` in eKuiper's failed-install text.

    >>> install_sh_output("fail to install plugin: err:exit status 1 stdout:a\\n stderr:b")
    (1, 'a\\n', 'b')
    >>> install_sh_output("portable plugin x is not found") is None
    True
    """
    match = _OUTPUT_RE.search(message)
    if match is None:
        return None
    return int(match.group(1)), match.group(2), match.group(3)


def install_sh_reason(message: str) -> str | None:
    """The last ``install.sh: ...`` line of a failed install, the reason our install.sh gives.

    >>> install_sh_reason("fail to install plugin: err:exit status 1 stdout: "
    ...                   "stderr:pip says\\ninstall.sh: no wheel\\n")
    'install.sh failed on the server: no wheel'
    """
    output = install_sh_output(message)
    if output is None:
        return None
    lines = [ln for ln in output[2].splitlines() if ln.startswith("install.sh: ")]
    if not lines:
        return None
    return "install.sh failed on the server: " + lines[-1][len("install.sh: "):]


def script_zip(name: str, script: str) -> list[ZipEntry]:
    """The entries of a zip that runs ``script`` as its install.sh and then fails.

    >>> sorted(e.name for e in script_zip("probe_1", "true"))
    ['install.sh', 'probe_1.json', 'probe_1.py']
    """
    manifest = {"name": name, "version": "0", "language": "python",
                "executable": f"{name}.py", "functions": [f"{name}_never"]}
    body = (f"#!/bin/sh\n# Run by eKuiper at install time; exits 1 so that eKuiper removes "
            f"this plugin again.\n{script}\necho {DONE_MARK}\nexit 1\n")
    return [ZipEntry(f"{name}.json", (json.dumps(manifest) + "\n").encode()),
            ZipEntry(f"{name}.py", b"# never started: install.sh always fails\n"),
            ZipEntry("install.sh", body.encode(), 0o755)]


def run_script(client: RestClient, name: str, script: str, *, via: str = "auto",
               log: IO[str] | None = None) -> ScriptOutput:
    """Run ``script`` on the server as the install.sh of a plugin called ``name``.

    Raises ``RestError`` when eKuiper did not run it (it names the reason), or when the
    install unexpectedly succeeded (the plugin is then deleted again).
    """
    with tempfile.TemporaryDirectory(prefix="ekuiper-script-") as tmp:
        path = Path(tmp) / f"{name}.zip"
        path.write_bytes(zip_bytes(script_zip(name, script)))
        try:
            install_zip(client, path, via=via, log=log)
        except RestError as exc:
            output = install_sh_output(exc.message)
            if output is None or DONE_MARK not in output[1]:
                raise
            return ScriptOutput(output[1].replace(DONE_MARK, "").rstrip("\n") + "\n",
                                output[2])
    client.delete(name)
    raise RestError(f"eKuiper installed the script plugin {name} instead of failing it",
                    hint="it was deleted again; report this with the server's version")


#: Removes what a failed install left behind. In the plugin's folder: the zip's folders
#: (eKuiper deletes only the files it unpacked, so its removal of the folder itself then
#: fails, and it warns about the folder at every start) and files made after unpacking
#: (``__pypackages__``, ``__pycache__``); only this script's three files stay, and eKuiper
#: removes them and the folder when the script fails. In eKuiper's ``etc/`` (the plugin
#: folder's ``../../../etc``): the copies of the zip's ``sources|sinks|functions`` files,
#: which eKuiper's clean-up misses too (it then warns "Find source metadata file but not
#: installed" at every start).
_SWEEP = """here=$(cd "$(dirname "$0")" && pwd)
for entry in "$here"/* "$here"/.[!.]*; do
    case "${entry##*/}" in
        install.sh|@NAME@.json|@NAME@.py|'*'|'.[!.]*') ;;
        *) rm -rf "$entry" ;;
    esac
done
etc="$here/../../../etc"
for file in @ETC_FILES@; do
    rm -f "$etc/$file"
done"""

_KIND_FILE_RE = re.compile(r"^(sources|sinks|functions)/[A-Za-z0-9_.-]+\.(json|yaml)$")


def sweep_leftovers(client: RestClient, name: str, kind_files: Sequence[str] = (), *,
                    via: str = "auto", log: IO[str] | None = None) -> bool:
    """Remove what a failed install of ``name`` left on the server: its folder under
    ``plugins/portable/`` and the ``etc/`` copies of ``kind_files`` (the zip's
    ``sources/…``, ``sinks/…``, ``functions/…`` files).

    eKuiper refuses the name of an installed plugin before it runs anything, so this never
    touches a plugin that is installed. Returns whether the sweep ran.
    """
    files = [f for f in kind_files if _KIND_FILE_RE.match(f)]
    script = _SWEEP.replace("@NAME@", name).replace("@ETC_FILES@", " ".join(files))
    try:
        run_script(client, name, script, via=via, log=log)
    except RestError:
        return False
    return True
