"""Which files of a plugin folder go into its zip, and what is wrong with the rest.

Left out: the default excludes (hidden files, caches, ``tests``...), ``--exclude``
patterns, whatever the folder's ``.ekuiperignore`` (gitignore syntax) names, and any
virtual environment, whatever its name (a folder with a ``pyvenv.cfg`` or
``conda-meta``). A symbolic link is packed as the file it points to when that file is
inside the folder; a link that leads out of it (``ln -s /etc/shadow``) or nowhere is an
error naming it, so nothing from outside the folder is shipped unseen. Files whose name
or first bytes look like a secret are packed, with a warning each.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import Problem
from .ignore import IgnoreRules

#: The ignore file read from the plugin folder's root.
IGNORE_FILE = ".ekuiperignore"
#: A folder holding one of these is a virtual environment, never part of the plugin.
VENV_MARKERS = ("pyvenv.cfg", "conda-meta")
#: Names that usually hold a secret (matched case-insensitively against the file name).
SECRET_NAMES = (
    "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "id_rsa*", "id_dsa*",
    "id_ecdsa*", "id_ed25519*", "*.env", "credentials*", "*secret*", "*password*",
    "token", "*.token", "token.*", "*_token", "*_token.*", "*-token.*", ".netrc", ".pgpass",
    "*.kdbx",
)
#: Code is never flagged by its name (``secret_store.py`` is code, not a secret).
CODE_SUFFIXES = (".py", ".pyi", ".go", ".js", ".ts")
#: Bytes at the start of a file that mark a private key, whatever its name.
SECRET_MARKERS = (b"-----BEGIN", b"PRIVATE KEY-----")
SECRET_FIX = f"if it must not ship, add it to {IGNORE_FILE} (gitignore syntax)"


@dataclass
class Tree:
    """The files to pack, as sorted ``(name in zip, path on disk)`` pairs, and problems."""

    files: list[tuple[str, Path]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def is_excluded(rel: PurePosixPath, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(part, pat) for part in rel.parts for pat in patterns) or \
        any(fnmatch.fnmatchcase(str(rel), pat) for pat in patterns)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _looks_secret(name: str, path: Path) -> bool:
    lowered = name.lower()
    if not lowered.endswith(CODE_SUFFIXES) and any(
            fnmatch.fnmatchcase(lowered, pat) for pat in SECRET_NAMES):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return SECRET_MARKERS[0] in head and SECRET_MARKERS[1] in head


def scan(plugin_dir: str | os.PathLike[str], patterns: Sequence[str],
         skip: Iterable[str | os.PathLike[str]] = ()) -> Tree:
    """Walk ``plugin_dir`` as ``pack`` does (see the module's text)."""
    root = Path(plugin_dir).resolve()
    skipped = {Path(s).resolve() for s in skip}
    rules = IgnoreRules.read(root / IGNORE_FILE)
    tree = Tree()

    def left_out(rel: PurePosixPath, is_dir: bool) -> bool:
        return is_excluded(rel, patterns) or rules.ignored(rel.as_posix(), is_dir)

    def link_target(path: Path, rel: PurePosixPath) -> Path | None:
        """Where a link leads, when inside the folder; else a problem and None."""
        target = path.resolve()
        if not target.exists():
            tree.problems.append(Problem(str(path), f"is a symbolic link to "
                                         f"{os.readlink(path)}, which does not exist",
                                         "remove the link or what it should point to"))
            return None
        if not _inside(target, root):
            tree.problems.append(Problem(str(path), f"is a symbolic link out of the plugin "
                                         f"folder (to {target}); pack never ships files "
                                         "from outside it", "copy the file into the "
                                         f"folder, or add {rel} to {IGNORE_FILE}"))
            return None
        return target

    # A folder reached through links is walked under each name that leads to it, but
    # never inside itself (a link to a parent would loop).
    def walk(here: Path, rel_dir: PurePosixPath, real: Path, chain: frozenset[Path]) -> None:
        try:
            names = sorted(os.listdir(here))
        except OSError as exc:
            tree.problems.append(Problem(str(here), f"cannot be read: {exc.strerror}",
                                         "fix its permissions"))
            return
        for name in names:
            path = here / name
            rel = rel_dir / name
            is_link = path.is_symlink()
            if left_out(rel, path.is_dir()):
                continue
            target = link_target(path, rel) if is_link else path
            if target is None:
                continue
            if target.is_dir():
                real_dir = target.resolve()
                if real_dir in chain:
                    continue  # a link back to a folder being walked: its files are packed
                if any((target / marker).exists() for marker in VENV_MARKERS):
                    continue
                walk(path, rel, real_dir, chain | {real_dir})
            elif target.is_file() and target.resolve() not in skipped:
                tree.files.append((rel.as_posix(), target))
                if _looks_secret(name, target):
                    tree.problems.append(Problem(str(path), "looks like a secret (a key, "
                                                 "credentials or a token) and is packed",
                                                 SECRET_FIX, warning=True))

    walk(root, PurePosixPath(), root, frozenset({root}))
    tree.files.sort()
    return tree
