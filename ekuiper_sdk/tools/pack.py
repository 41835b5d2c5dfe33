"""``pack``: validate a plugin folder, then write the zip eKuiper installs (and/or its
start-up layout), with vendored wheels on request.

Example::

    pack("myplugin", "dist/myplugin.zip")
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ..errors import PackagingError, Problem
from .archive import ZipEntry, plugin_entries, write_atomic, write_layout, zip_bytes
from .manifest import Manifest, PathLike
from .uimeta import MISSING_MESSAGE, metadata_entries
from .validate import validate

if TYPE_CHECKING:
    from .vendor import VendorOptions

@dataclass
class PackResult:
    """What ``pack`` wrote."""

    manifest: Manifest
    entries: list[ZipEntry]
    zip_path: Path | None = None
    layout_dir: Path | None = None
    sha256: str = ""
    size: int = 0
    warnings: list[Problem] = field(default_factory=list)


def pack(plugin_dir: PathLike, output: PathLike | None = None, *, name: str | None = None,
         layout: PathLike | None = None, excludes: Sequence[str] = (),
         vendor: VendorOptions | None = None, python: str | None = None,
         check_code: bool = True, log: IO[str] | None = None) -> PackResult:
    """Validate a plugin folder, then write its zip (and/or its start-up layout).

    With ``vendor``, the wheels of the plugin's requirements and of ekuiper-sdk are added
    with an ``install.sh`` that installs them offline into the plugin's own folder, and the
    manifest's ``executable`` becomes a launcher that puts that folder on the path (see
    :mod:`.launcher`; ``VendorOptions(shared_python=True)`` installs into the interpreter
    instead); every wheel is resolved before any output is written. ``output`` defaults to
    ``<name>.zip`` in the current folder when no ``layout`` is asked for. Raises
    ``PackagingError`` listing every problem.

    >>> pack("pysam", "dist/pysam.zip").sha256                   # doctest: +SKIP
    '5d1c...'
    """
    root = Path(plugin_dir)
    skip = [Path(output)] if output is not None else []
    result = validate(root, name=name, python=python, check_code=check_code, excludes=excludes)
    if result.manifest is not None and output is None and layout is None:
        output = Path(f"{result.manifest.name}.zip")
        skip.append(Path(output))
    if not result.ok or result.manifest is None:
        raise PackagingError(result.errors)
    manifest = result.manifest
    # A zip from an earlier run sitting in the folder is never part of the plugin.
    skip.append(root / f"{manifest.name}.zip")
    entries = plugin_entries(root, manifest, excludes, skip)
    # UI metadata the author did not write, from what the code says (files written win).
    entries += metadata_entries(manifest, entries, result.described)
    warnings = [w for w in result.warnings if w.message != MISSING_MESSAGE]
    if vendor is not None:
        from .vendor import vendor_entries

        if any(e.name == "install.sh" for e in entries):
            raise PackagingError([Problem(str(root / "install.sh"), "exists, and --vendor writes "
                                          "its own install.sh", "move its steps elsewhere or "
                                          "pack without --vendor")])
        entries += vendor_entries(root, manifest, vendor, log=log)
        if not vendor.shared_python:
            from .launcher import isolate

            entries = isolate(entries, manifest)
    elif manifest.language == "python":
        warnings.append(Problem(str(root), "the zip carries no wheels: ekuiper-sdk and the "
                                "requirements must already be installed where eKuiper runs "
                                "(the stock slim-python image has neither)",
                                "add --vendor to ship them", warning=True))
    data = zip_bytes(entries)
    out = PackResult(manifest, sorted(entries, key=lambda e: e.name), warnings=warnings,
                     sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    if output is not None:
        out.zip_path = Path(output)
        write_atomic(out.zip_path, data)
    if layout is not None:
        out.layout_dir = write_layout(entries, manifest.name, layout)
    return out
