"""Each vendored plugin's dependencies in its own folder, and the launcher that uses them.

eKuiper starts every Python plugin with the same interpreter (``portable.pythonBin``), so
wheels installed into it are shared: two plugins that pin different versions of a package
overwrite each other, and a deleted plugin leaves its packages behind. ``pack --vendor``
therefore makes ``install.sh`` install the wheels into ``__pypackages__/`` inside the
plugin's own folder (which eKuiper deletes with the plugin), and points the manifest's
``executable`` at a small launcher, ``__launch__.py``, that puts that folder on the path
and runs the real script. eKuiper still starts it as ``python -u __launch__.py <json>``.

Example::

    entries = isolate(entries, manifest)   # the manifest rewritten, the launcher added
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..errors import PackagingError, Problem
from .archive import ZipEntry
from .manifest import Manifest

LAUNCHER = "__launch__.py"
PACKAGES_DIR = "__pypackages__"

# The launcher imports only the standard library: it runs before the plugin's packages are
# on the path. The script's folder stays first, as when Python runs the script itself, then
# the plugin's packages, then the interpreter's own; addsitedir also runs their .pth files.
_LAUNCHER = '''\
"""Starts @EXECUTABLE@ with this plugin's own packages (@PACKAGES@/) first on the path.

Written by `ekuiper-plugin pack --vendor`; install.sh fills @PACKAGES@/ from wheels/.
"""
import os
import runpy
import site
import sys

here = os.path.dirname(os.path.abspath(__file__))
main = os.path.join(here, @EXECUTABLE_REPR@)
packages = os.path.join(here, "@PACKAGES@")
rest = sys.path[1:]
if os.path.isdir(packages):
    before = set(sys.path)
    site.addsitedir(packages)
    added = [p for p in sys.path if p not in before]
    rest = added + [p for p in rest if p not in added]
sys.path[:] = [os.path.dirname(main)] + rest
sys.argv[0] = main
runpy.run_path(main, run_name="__main__")
'''


def launcher_script(executable: str) -> str:
    """The launcher that runs ``executable`` (relative to the plugin folder).

    >>> "runpy.run_path" in launcher_script("main.py")
    True
    """
    # The name goes into code only as a repr, and into the docstring escaped, so that no
    # name (one with \"\"\" or a line break in it) can end the string and add code.
    in_docstring = executable.encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return (_LAUNCHER.replace("@EXECUTABLE_REPR@", repr(executable))
            .replace("@EXECUTABLE@", in_docstring).replace("@PACKAGES@", PACKAGES_DIR))


def isolate(entries: Sequence[ZipEntry], manifest: Manifest) -> list[ZipEntry]:
    """The entries with the launcher added and the manifest's ``executable`` pointing at it.

    Every other key of the manifest is kept as the author wrote it.

    >>> m = Manifest("p", "1", "python", "main.py", functions=("f",))
    >>> out = isolate([ZipEntry("p.json", b'{"executable": "main.py"}')], m)
    >>> sorted(e.name for e in out), json.loads(out[0].data)["executable"]
    (['__launch__.py', 'p.json'], '__launch__.py')
    """
    names = {e.name for e in entries}
    for taken in (LAUNCHER, PACKAGES_DIR):
        if taken in names or any(n.startswith(taken + "/") for n in names):
            raise PackagingError([Problem(taken, "exists in the plugin folder, and --vendor "
                                          "writes its own", "rename it, or pack with "
                                          "--shared-python")])
    manifest_name = f"{manifest.name}.json"
    out: list[ZipEntry] = []
    for entry in entries:
        if entry.name == manifest_name:
            data = json.loads(entry.data)
            data["executable"] = LAUNCHER
            entry = ZipEntry(entry.name, (json.dumps(data, indent=2) + "\n").encode("utf-8"),
                             entry.mode)
        out.append(entry)
    out.append(ZipEntry(LAUNCHER, launcher_script(manifest.executable).encode("utf-8"), 0o755))
    return out
