"""Run a plugin's script seeing only what eKuiper's Python will have: the plugin's own folder,
the standard library and the distributions it ships or names.

``validate`` runs the plugin once to list its symbols. Run with the developer's Python, an
import of a package that happens to be installed there (``dateutil``) passes, and the
same plugin on eKuiper dies at import with ``No module named 'dateutil'``, which eKuiper
reports only as a handshake time-out a minute later. Run through this file, an import of
a top-level module that belongs to an installed distribution the plugin does not ship is
refused the way the server would refuse it, and the refusal is named on stderr
(``NOT_SHIPPED <module> <distribution>``) for ``validate`` to turn into one line.

Run as a script by path, so it needs nothing but the standard library of whichever
interpreter runs the plugin::

    EKUIPER_SDK_SHIPPED='["ekuiper-sdk", "pyyaml"]' python import_guard.py main.py '{}'
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import json
import os
import re
import runpy
import sys
from collections.abc import Iterable, Sequence

#: The distributions the plugin will have, as a JSON list of names.
SHIPPED_ENV = "EKUIPER_SDK_SHIPPED"
#: The first word of the line that names a refused import.
MARKER = "NOT_SHIPPED"

_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    """A distribution name as pip compares them.

    >>> canonical("Python_Dateutil")
    'python-dateutil'
    """
    return re.sub(r"[-_.]+", "-", name).lower()


def with_dependencies(names: Iterable[str]) -> set[str]:
    """``names`` and, as far as they are installed here, everything they require.

    Requirements behind an ``extra`` are left out (pip does not install them either);
    other markers are taken as true, so a check never refuses what the server may have.
    """
    todo = [canonical(n) for n in names]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.distribution(name).requires or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            if "extra" in requirement.partition(";")[2]:
                continue
            match = _NAME_RE.match(requirement)
            if match:
                todo.append(canonical(match.group(1)))
    return seen


def module_owners() -> dict[str, str]:
    """Every installed distribution's top-level modules, mapped to the distribution's name."""
    owners: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] or ""
        tops = (dist.read_text("top_level.txt") or "").split()
        if not tops:
            for file in dist.files or ():
                first = file.parts[0] if file.parts else ""
                if first in ("..", "__pycache__") or first.endswith((".dist-info", ".egg-info",
                                                                     ".pth", ".data")):
                    continue
                tops.append(first.split(".")[0])
        for top in tops:
            owners.setdefault(top, name)
    return owners


class _Guard(importlib.abc.MetaPathFinder):
    def __init__(self, refused: dict[str, str]) -> None:
        self.refused = refused

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        if path is None and fullname in self.refused:
            sys.stderr.write(f"{MARKER} {fullname} {self.refused[fullname]}\n")
            sys.stderr.flush()
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def main(argv: Sequence[str]) -> None:
    script = os.path.abspath(argv[0])
    shipped = with_dependencies(json.loads(os.environ.pop(SHIPPED_ENV, "[]")))
    refused = {top: dist for top, dist in module_owners().items()
               if canonical(dist) not in shipped and top not in sys.modules}
    sys.meta_path.insert(0, _Guard(refused))
    # The plugin's folder first, as for `python main.py`, and never this file's folder.
    sys.path[0] = os.path.dirname(script)
    sys.argv = [script, *argv[1:]]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
