"""The files of a plugin folder, and the zip and folder layouts eKuiper installs.

eKuiper's rules (its ``internal/plugin/portable/manager.go``): entries under ``sources/``,
``sinks/`` and ``functions/`` are copied into eKuiper's ``etc`` and ``data`` folders,
everything else into ``plugins/portable/<name>/``; a file is extracted with a single-level
``mkdir`` of its parent, so every nested folder needs its own directory entry before the
files in it; file modes come from the zip entry, so the executable needs its ``x`` bits.
Zips are deterministic: the same files give the same bytes.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import PackagingError, Problem
from . import plugin_tree
from .manifest import KINDS, Manifest, PathLike

#: Names never packed: tool caches, version control, virtual environments, tests, builds,
#: and the ``state/`` folder where ``ctx.state`` keeps a developer's local offsets.
#: A plugin's tests are not needed on the device; ``--exclude`` adds more patterns.
DEFAULT_EXCLUDES = (
    ".*", "__pycache__", "*.pyc", "*.pyo", "*.egg-info", "venv", "build", "dist", "tests",
    "node_modules", "state", "CVS",
)


#: Fixed time of every zip entry: the earliest a zip can hold, so equal input gives equal bytes.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


_STORED_SUFFIXES = (".whl", ".zip", ".gz", ".tgz", ".xz", ".bz2", ".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class ZipEntry:
    """One file of a plugin zip: its name inside the zip, its bytes, its Unix mode."""

    name: str
    data: bytes
    mode: int = 0o644

    @property
    def kind(self) -> str | None:
        """``sources``/``sinks``/``functions`` when eKuiper copies it to etc and data."""
        top = self.name.split("/", 1)[0]
        return top if top in KINDS and "/" in self.name else None


def is_excluded(rel: PurePosixPath, patterns: Sequence[str]) -> bool:
    return plugin_tree.is_excluded(rel, patterns)


def plugin_files(plugin_dir: PathLike, excludes: Sequence[str] = (),
                 skip: Iterable[PathLike] = ()) -> list[tuple[str, Path]]:
    """The files a plugin zip carries, as sorted ``(name in zip, path on disk)`` pairs.

    ``DEFAULT_EXCLUDES`` and ``excludes`` are glob patterns matched against every path
    component and against the whole relative path; ``skip`` lists files to leave out
    (such as the zip being written); the folder's ignore file, virtual environments and
    symbolic links are handled as :mod:`.plugin_tree` says. Raises ``PackagingError``
    for a link out of the folder (:func:`plugin_tree_problems` lists it without raising).

    >>> [name for name, _ in plugin_files("pysam")]       # doctest: +SKIP
    ['functions/revert.json', 'main.py', 'pysam.json', 'sources/pyjson.yaml']
    """
    tree = plugin_tree.scan(plugin_dir, list(DEFAULT_EXCLUDES) + list(excludes), skip)
    errors = [p for p in tree.problems if not p.warning]
    if errors:
        raise PackagingError(errors)
    return tree.files


def plugin_tree_problems(plugin_dir: PathLike, excludes: Sequence[str] = ()) -> list[Problem]:
    """What :func:`plugin_files` refuses (links out of the folder) and warns about (files
    that look like secrets)."""
    return plugin_tree.scan(plugin_dir, list(DEFAULT_EXCLUDES) + list(excludes)).problems


def file_mode(path: Path, executable: bool = False) -> int:
    """The normalised mode stored for a file: 0755 when executable, else 0644.

    >>> oct(file_mode(Path("main.py"), executable=True))
    '0o755'
    """
    try:
        has_x = bool(path.stat().st_mode & 0o111)
    except OSError:
        has_x = False
    return 0o755 if executable or has_x else 0o644


def plugin_entries(plugin_dir: PathLike, manifest: Manifest, excludes: Sequence[str] = (),
                   skip: Iterable[PathLike] = ()) -> list[ZipEntry]:
    """The zip entries of a plugin folder, with the executable marked executable.

    >>> [e.name for e in plugin_entries("pysam", manifest)]     # doctest: +SKIP
    ['main.py', 'pysam.json', 'sources/pyjson.yaml']
    """
    # The mode of what a link points to: a link itself is always 0777.
    return [ZipEntry(name, path.read_bytes(), file_mode(path, name == manifest.executable))
            for name, path in plugin_files(plugin_dir, excludes, skip)]


def _directories(names: Iterable[str]) -> list[str]:
    dirs = set()
    for name in names:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]) + "/")
    # eKuiper sends sources/, sinks/ and functions/ to its etc and data folders file by file;
    # an entry for the folder itself would only leave an empty folder in the plugin's.
    return sorted(d for d in dirs if d.rstrip("/") not in KINDS)


def zip_bytes(entries: Sequence[ZipEntry]) -> bytes:
    """A deterministic zip of ``entries``: sorted names, a directory entry before the files of
    every nested folder, fixed times, Unix modes; equal entries give equal bytes.

    >>> data = zip_bytes([ZipEntry("a.json", b"{}"), ZipEntry("lib/x.py", b"", 0o644)])
    >>> zipfile.ZipFile(io.BytesIO(data)).namelist()
    ['a.json', 'lib/', 'lib/x.py']
    """
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise PackagingError([Problem("", f"the zip would hold {', '.join(dup)} twice",
                                      "remove the duplicate file")])
    items: list[tuple[str, ZipEntry | None]] = [(d, None) for d in _directories(names)]
    items += [(e.name, e) for e in entries]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, entry in sorted(items, key=lambda item: item[0]):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.create_system = 3  # Unix, so that readers take the mode from external_attr
            if entry is None:
                info.external_attr = ((stat.S_IFDIR | 0o755) << 16) | 0x10
                info.compress_type = zipfile.ZIP_STORED
                zf.writestr(info, b"")
                continue
            info.external_attr = (stat.S_IFREG | entry.mode) << 16
            stored = name.lower().endswith(_STORED_SUFFIXES)
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            zf.writestr(info, entry.data, compresslevel=None if stored else 9)
    return buf.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, so a reader never sees half a zip.

    >>> write_atomic(Path(tempfile.mkdtemp()) / "x.zip", b"PK")
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_layout(entries: Sequence[ZipEntry], name: str, layout_dir: PathLike) -> Path:
    """Write the folders eKuiper loads at start-up, as an install of the zip would leave them:
    ``plugins/portable/<name>/...`` and the ``sources|sinks|functions`` files under both
    ``etc/`` and ``data/``. ``plugins/portable/<name>/`` is replaced; nothing else is removed.

    >>> write_layout(entries, "pysam", "image-root")        # doctest: +SKIP
    PosixPath('image-root')
    """
    root = Path(layout_dir)
    plugin_root = root / "plugins" / "portable" / name
    if plugin_root.exists():
        shutil.rmtree(plugin_root)
    targets: list[tuple[Path, ZipEntry]] = []
    for entry in entries:
        if entry.kind:
            targets += [(root / "etc" / entry.name, entry), (root / "data" / entry.name, entry)]
        else:
            targets.append((plugin_root / entry.name, entry))
    plugin_root.mkdir(parents=True, exist_ok=True)
    for target, entry in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(entry.data)
        os.chmod(target, entry.mode)
    return root
