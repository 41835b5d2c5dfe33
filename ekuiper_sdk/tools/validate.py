"""``validate``: a plugin folder checked against eKuiper's install rules and its own code.

The manifest (:mod:`.manifest`), the files eKuiper needs in the zip, and the symbols the
code defines, which the plugin lists without opening a socket when started with
``EKUIPER_SDK_LIST_SYMBOLS=1`` (``ekuiper_sdk.plugin.start`` does so).

Example::

    result = validate("myplugin")
    for problem in result.problems:
        print(problem)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PackagingError, Problem
from ..plugin import LIST_SYMBOLS_ENV
from . import import_guard
from .archive import plugin_files, plugin_tree_problems
from .manifest import KINDS, SINGULAR, Manifest, PathLike, find_manifest, load_manifest
from .stream_keys import overwritten, warning_text
from .uimeta import MISSING_FIX, MISSING_MESSAGE, missing_files


@dataclass
class Validation:
    """What ``validate`` found: the manifest (when readable) and every problem."""

    plugin_dir: Path
    manifest: Manifest | None = None
    problems: list[Problem] = field(default_factory=list)
    #: The symbols the code defines, from symbol listing (None when not checked).
    defined: dict[str, list[str]] | None = None
    #: What the code says about each symbol, for the UI metadata (see ekuiper_sdk.metadata).
    described: dict[str, Any] | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if not p.warning]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.warning]

    @property
    def ok(self) -> bool:
        return not self.errors


def _check_files(root: Path, manifest: Manifest, files: Sequence[tuple[str, Path]],
                 where: str) -> list[Problem]:
    out: list[Problem] = []
    names = {n for n, _ in files}
    exe_path = root / manifest.executable
    if manifest.executable not in names:
        if exe_path.is_file():
            out.append(Problem(str(exe_path), "is left out of the zip by an exclude pattern",
                               "move it out of the excluded folder or change 'executable'"))
        else:
            out.append(Problem(where, f"'executable' {manifest.executable!r} does not exist in "
                               f"{root}", "create it or fix the path"))
    for src in manifest.sources:
        if f"sources/{src}.yaml" not in names:
            out.append(Problem(str(root / "sources" / f"{src}.yaml"), "missing; eKuiper refuses "
                               "a source without its default configuration",
                               "create it (at least the line 'default:')"))
    declared = {kind: set(names_) for kind, names_ in manifest.symbols().items()}
    for name, path in files:
        top, _, rest = name.partition("/")
        if top not in KINDS or not rest:
            continue
        if "/" in rest:
            out.append(Problem(str(path), f"is nested in {top}/; eKuiper only reads the files "
                               f"directly in {top}/", f"move it to {top}/"))
            continue
        stem, dot, suffix = rest.rpartition(".")
        if suffix == "json":
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                out.append(Problem(str(path), f"is not valid JSON ({exc}); eKuiper cannot show "
                                   "the metadata", "fix the syntax"))
        if not dot or stem not in declared[top]:
            # These files land in eKuiper's shared etc/ and data/ folders, where a stray one
            # can overwrite the configuration of another plugin's symbol.
            out.append(Problem(str(path), f"belongs to no declared {SINGULAR[top]}, yet eKuiper "
                               f"copies it into its shared etc/{top} and data/{top} folders",
                               f"remove it or declare {stem!r} in {where}", warning=True))
    return out


@dataclass(frozen=True)
class Style:
    """How the plugin's code is written, so that hints use its own words.

    ``app`` is the name of the decorator style's ``Plugin`` object; ``None`` for the class
    style (``PluginConfig`` and ``plugin.start``).

    >>> Style.of("app = Plugin('x')\\n@app.function()\\ndef f(a): ...").naming("x")
    "Plugin('x')"
    """

    app: str | None = None

    @classmethod
    def of(cls, source: str) -> Style:
        """The style of a plugin's source text."""
        bound = re.search(r"^\s*(\w+)\s*=\s*(?:\w+\.)?Plugin\(", source, re.MULTILINE)
        if bound:
            return cls(bound.group(1))
        used = re.search(r"^\s*@(\w+)\.(?:source|sink|function)\b", source, re.MULTILINE)
        return cls(used.group(1)) if used else cls()

    def naming(self, name: str) -> str:
        """The call that names the plugin."""
        return f"Plugin({name!r})" if self.app else f"PluginConfig({name!r}, ...)"

    def start(self) -> str:
        """The call that serves the plugin, at the end of the script."""
        return f"{self.app}.run()" if self.app else "plugin.start(PluginConfig(...))"

    def define(self, kind: str, symbol: str) -> str:
        """How to define one symbol."""
        if self.app:
            return f"decorate a {SINGULAR[kind]} with @{self.app}.{SINGULAR[kind]}({symbol!r})"
        return f"add {symbol!r} to the {kind} of PluginConfig"


def shipped_distributions(plugin_dir: PathLike) -> list[str]:
    """What eKuiper's Python will have for the plugin: what requirements.txt names, and
    ekuiper-sdk (in the zip with ``--vendor``, else installed there), with their
    dependencies. ``--vendor`` downloads the wheels of exactly these."""
    from .vendor import SDK_DIST, read_requirements, requirement_name

    try:
        names = [requirement_name(r) for r in read_requirements(Path(plugin_dir) /
                                                                 "requirements.txt")]
    except PackagingError:
        names = []          # pack reports the bad line itself
    return sorted({*names, SDK_DIST})


def list_symbols(plugin_dir: PathLike, manifest: Manifest, python: str | None = None,
             timeout: float = 30.0,
             style: Style | None = None) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Run the executable when asked to list its symbols and return the symbols it defines.

    The plugin prints ``{"name", "sources", "sinks", "functions"}`` and exits without
    opening any socket when ``EKUIPER_SDK_LIST_SYMBOLS=1``; it runs from its own folder as
    eKuiper runs it, through :mod:`.import_guard`, so that it imports only what eKuiper's
    Python will have (:func:`shipped_distributions`). ``python`` defaults to this
    interpreter.

    >>> defined, problems = list_symbols("pysam", manifest)          # doctest: +SKIP
    >>> defined["functions"]                                     # doctest: +SKIP
    ['revert']
    """
    root = Path(plugin_dir).resolve()
    exe = root / manifest.executable
    shown = str(Path(plugin_dir) / manifest.executable)
    style = style or Style()
    env = dict(os.environ)
    env[LIST_SYMBOLS_ENV] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env[import_guard.SHIPPED_ENV] = json.dumps(shipped_distributions(root))
    cmd = [python or sys.executable, "-u", import_guard.__file__, str(exe),
           json.dumps({"sendTimeout": 1000})]
    try:
        proc = subprocess.run(cmd, cwd=str(exe.parent), env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, [Problem(shown, f"listed no symbols within {timeout:g} s",
                              f"make sure it calls {style.start()} and does no "
                              "blocking work at import (the official 'ekuiper' package has no "
                              "symbol listing)")]
    except OSError as exc:
        return None, [Problem(shown, f"cannot be started with {cmd[0]} ({exc.strerror})",
                              "pass --python with a working interpreter")]
    stderr = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    last_err = stderr[-1] if stderr else "no output"
    refused = _refused_import(stderr) if proc.returncode != 0 else None
    if refused is not None:
        module, dist = refused
        return None, [Problem(shown, f"imports {module!r} (distribution {dist}), which eKuiper's "
                              f"Python will not have: requirements.txt does not name it, so "
                              f"the plugin would fail there with No module named {module!r}",
                              f"add {dist} to {Path(plugin_dir) / 'requirements.txt'}")]
    if proc.returncode != 0:
        return None, [Problem(shown, f"failed to list its symbols (exit {proc.returncode}): "
                              f"{last_err}",
                              f"run `{LIST_SYMBOLS_ENV}=1 python {manifest.executable}`"
                              " in the plugin folder to see why (missing requirement? install "
                              "them or pass --python)")]
    for line in reversed(proc.stdout.decode("utf-8", "replace").splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and all(isinstance(data.get(k), list) for k in KINDS):
            return data, []
    return None, [Problem(shown, "exited without listing its symbols",
                          f"call `{style.start()}` from ekuiper_sdk at the end of the script")]


def _refused_import(stderr: Sequence[str]) -> tuple[str, str] | None:
    """The import the guard refused, when that refusal is what ended the plugin."""
    refused = dict(line.split()[1:3] for line in stderr
                   if line.startswith(import_guard.MARKER + " ") and len(line.split()) >= 3)
    last = stderr[-1] if stderr else ""
    for module, dist in refused.items():
        if last.endswith(f"No module named {module!r}"):
            return module, dist
    return None


_YAML_KEY_RE = re.compile(r"^[ \t]+[\"']?([A-Za-z_][A-Za-z0-9_]*)[\"']?[ \t]*:")


def _overwritten_keys(root: Path, manifest: Manifest,
                      described: Mapping[str, Any] | None) -> list[Problem]:
    """A warning for each source key eKuiper overwrites with a stream property
    (:mod:`.stream_keys`): in ``sources/<name>.yaml`` (read line by line, so no YAML
    library is needed) and in a declared configuration."""
    out: list[Problem] = []
    for src in manifest.sources:
        path = root / "sources" / f"{src}.yaml"
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            lines = []
        for number, line in enumerate(lines, 1):
            match = _YAML_KEY_RE.match(line)   # indented: a key inside a section
            for key, prop in overwritten([match.group(1)] if match else []):
                out.append(Problem(f"{path}:{number}", warning_text("key", key, prop),
                                   "rename the key, or set it on the stream "
                                   f"(CREATE STREAM ... WITH ({prop}=...))", warning=True))
        fields = ((described or {}).get("sources") or {}).get(src) or {}
        names = [str(f.get("name")) for f in fields.get("properties") or []
                 if isinstance(f, dict)]
        for key, prop in overwritten(names):
            out.append(Problem(str(root / manifest.executable), warning_text(
                f"source {src!r}: configuration field", key, prop), "rename the field, or "
                f"read the stream's {prop} through it on purpose", warning=True))
    return out


def _check_symbols(manifest: Manifest, defined: Mapping[str, Any], where: str,
                   exe: str, style: Style) -> list[Problem]:
    out: list[Problem] = []
    code_name = defined.get("name")
    if code_name != manifest.name:
        # The plugin dials ipc:///tmp/plugin_<its own name>.ipc; eKuiper listens at the
        # manifest's name, so a mismatch is a plugin that never completes its handshake.
        out.append(Problem(exe, f"{'Plugin' if style.app else 'PluginConfig'} names the plugin "
                           f"{code_name!r} but the manifest is {manifest.name}.json; eKuiper "
                           "would wait for a handshake that never comes",
                           f"use {style.naming(manifest.name)}"))
    for kind in KINDS:
        have = set(defined.get(kind) or ())
        declared = manifest.symbols()[kind]
        listing = ", ".join(sorted(have)) or "none"
        for sym in declared:
            if sym not in have:
                out.append(Problem(where, f"{SINGULAR[kind]} {sym!r} is declared but {exe} does "
                                   f"not define it (it defines: {listing})",
                                   f"{style.define(kind, sym)} or remove it from the "
                                   "manifest"))
        for sym in sorted(have - set(declared)):
            out.append(Problem(exe, f"{SINGULAR[kind]} {sym!r} is defined but not declared, so "
                               "eKuiper never offers it", f"add it to \"{kind}\" in {where}",
                               warning=True))
    return out


def validate(plugin_dir: PathLike, *, name: str | None = None, python: str | None = None,
             check_code: bool = True, excludes: Sequence[str] = (),
             timeout: float = 30.0) -> Validation:
    """Check a plugin folder the way eKuiper's installer will, plus its code's symbols.

    >>> result = validate("pysam")                       # doctest: +SKIP
    >>> [str(p) for p in result.errors]                  # doctest: +SKIP
    ["pysam/pysam.json: function 'revert' is declared but main.py does not define it ..."]
    """
    root = Path(plugin_dir)
    result = Validation(root)
    try:
        path = find_manifest(root, name)
    except PackagingError as exc:
        result.problems.extend(exc.problems)
        return result
    manifest, problems = load_manifest(path)
    result.problems.extend(problems)
    if manifest is None:
        return result
    result.manifest = manifest
    tree_problems = plugin_tree_problems(root, excludes)
    result.problems.extend(tree_problems)
    if any(not p.warning for p in tree_problems):
        return result
    files = plugin_files(root, excludes)
    result.problems.extend(_check_files(root, manifest, files, str(path)))
    for missing in missing_files(manifest, [n for n, _ in files]):
        result.problems.append(Problem(str(root / missing), MISSING_MESSAGE, MISSING_FIX,
                                       warning=True))
    if check_code and manifest.language == "python" and (root / manifest.executable).is_file():
        try:
            style = Style.of((root / manifest.executable).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            style = Style()
        defined, problems = list_symbols(root, manifest, python, timeout, style)
        result.problems.extend(problems)
        if defined is not None:
            result.defined = {k: list(defined.get(k) or []) for k in KINDS}
            described = defined.get("metadata")
            result.described = described if isinstance(described, dict) else None
            result.problems.extend(_check_symbols(manifest, defined, str(path),
                                                  str(root / manifest.executable), style))
    result.problems.extend(_overwritten_keys(root, manifest, result.described))
    return result
