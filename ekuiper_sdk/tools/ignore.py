"""Gitignore-syntax patterns, with the standard library only.

The tools depend on nothing outside the standard library, and a plugin folder's ignore
file needs no more than git's own pattern rules, which are small enough to implement
here: ``#`` comments, ``!`` to re-include, a trailing ``/`` for folders only, a ``/``
at the start or in the middle to anchor at the folder's root (else the pattern matches
a name at any depth), ``*``, ``?``, ``[...]`` and ``**``; the last matching line wins.
As in git, a file inside an ignored folder cannot be re-included (the folder is not
walked).

>>> rules = IgnoreRules.parse(["*.pem", "/local.env", "env/", "!keep.pem", "docs/**/*.tmp"])
>>> [rules.ignored(p, d) for p, d in [("a/b.pem", False), ("keep.pem", False),
...  ("local.env", False), ("sub/local.env", False), ("env", True), ("env", False),
...  ("docs/x/y/z.tmp", False)]]
[True, False, True, False, True, False, True]
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def _translate(pattern: str) -> str:
    """The regular expression for one pattern's path part (``/``-separated)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i) and i + 2 == n:
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("!", "^") else i + 1)
            if end < 0:
                out.append(re.escape(c))
                i += 1
                continue
            body = pattern[i + 1:end]
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _rule(line: str) -> _Rule | None:
    line = line.rstrip("\n").rstrip("\r")
    while line.endswith(" ") and not line.endswith("\\ "):
        line = line[:-1]
    if not line or line.startswith("#"):
        return None
    negate = line.startswith("!")
    if negate:
        line = line[1:]
    elif line.startswith("\\!") or line.startswith("\\#"):
        line = line[1:]
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    line = line.lstrip("/")
    prefix = "" if anchored else "(?:.*/)?"
    return _Rule(re.compile(prefix + _translate(line) + r"\Z"), negate, dir_only)


class IgnoreRules:
    """The rules of one ignore file; :meth:`ignored` tells whether a path is left out."""

    def __init__(self, rules: list[_Rule]) -> None:
        self._rules = rules

    @classmethod
    def parse(cls, lines: Iterable[str]) -> IgnoreRules:
        return cls([rule for rule in map(_rule, lines) if rule is not None])

    @classmethod
    def read(cls, path: Path) -> IgnoreRules:
        """The rules in ``path``; none when there is no such file."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls([])
        return cls.parse(text.splitlines())

    def __bool__(self) -> bool:
        return bool(self._rules)

    def ignored(self, rel: str, is_dir: bool) -> bool:
        """Whether ``rel`` (relative to the folder, ``/``-separated) is left out."""
        verdict = False
        for rule in self._rules:
            if rule.dir_only and not is_dir:
                continue
            if rule.regex.match(rel):
                verdict = not rule.negate
        return verdict
