"""Portable-plugin manifests, their validation, and the zip and folder layouts eKuiper installs.

What eKuiper does with a plugin zip (its ``internal/plugin/portable/manager.go``) decides
every rule here:

* the zip root holds ``<name>.json`` (``name`` is the one given to the REST call), the
  executable under exactly the path the manifest names, and ``sources/<src>.yaml`` for
  every source;
* entries under ``sources/``, ``sinks/`` and ``functions/`` are copied into eKuiper's ``etc``
  and ``data`` folders, everything else into ``plugins/portable/<name>/``;
* a file is extracted with a single-level ``mkdir`` of its parent, so every nested folder
  needs its own directory entry before the files in it;
* file modes come from the zip entry, so the executable needs its ``x`` bits there.

Example::

    from ekuiper_sdk import packaging
    result = packaging.validate("myplugin")
    if result.ok:
        packaging.pack("myplugin", "dist/myplugin.zip")
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import importlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import (
    IO,
    TYPE_CHECKING,
    Any,
    Union,
)

from .plugin import DESCRIBE_ENV

if TYPE_CHECKING:  # vendoring imports this module
    from .vendoring import VendorOptions

PathLike = Union[str, "os.PathLike[str]"]

#: The kinds of symbol, as the manifest spells them, and the folder of their files.
KINDS = ("sources", "sinks", "functions")
#: The singular of each kind, for messages and for the describe output.
SINGULAR = {"sources": "source", "sinks": "sink", "functions": "function"}

MANIFEST_KEYS = ("name", "version", "language", "executable", "sources", "sinks", "functions",
                 "virtualEnvType", "env")
LANGUAGES = ("python", "go")
VIRTUAL_ENV_TYPES = ("conda",)

# Kept equal to the patterns of plugin.json; a test checks that both accept the same names.
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
FUNCTION_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Names never packed: tool caches, version control, virtual environments, tests, builds,
#: and the ``state/`` folder where ``ctx.state`` keeps a developer's local offsets.
#: A plugin's tests are not needed on the device; ``--exclude`` adds more patterns.
DEFAULT_EXCLUDES = (
    ".*", "__pycache__", "*.pyc", "*.pyo", "*.egg-info", "venv", "build", "dist", "tests",
    "node_modules", "state",
)

#: Fixed time of every zip entry: the earliest a zip can hold, so equal input gives equal bytes.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_STORED_SUFFIXES = (".whl", ".zip", ".gz", ".tgz", ".xz", ".bz2", ".png", ".jpg", ".jpeg")


class PackagingError(Exception):
    """A plugin that cannot be packed or installed; ``problems`` holds one line per cause."""

    def __init__(self, problems: Sequence[Problem | str]) -> None:
        self.problems = [p if isinstance(p, Problem) else Problem("", str(p)) for p in problems]
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a plugin: the file it is in, what is wrong, and how to fix it.

    >>> str(Problem("p/p.json", "'language' is missing", "add \\"language\\": \\"python\\""))
    'p/p.json: \\'language\\' is missing; add "language": "python"'
    """

    path: str
    message: str
    fix: str = ""
    warning: bool = False

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        if self.fix:
            text += f"; {self.fix}"
        return ("warning: " + text) if self.warning else text


@dataclass(frozen=True)
class Manifest:
    """A parsed ``<name>.json``.

    >>> m = Manifest.from_dict({"version": "1", "language": "python", "executable": "main.py",
    ...                         "functions": ["up"]}, "demo")
    >>> m.symbols()["functions"]
    ('up',)
    """

    name: str
    version: str
    language: str
    executable: str
    sources: tuple[str, ...] = ()
    sinks: tuple[str, ...] = ()
    functions: tuple[str, ...] = ()
    virtual_env_type: str | None = None
    env: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str) -> Manifest:
        """Build from decoded JSON that ``check_manifest`` accepted."""
        return cls(
            name=name, version=str(data.get("version", "")), language=str(data.get("language", "")),
            executable=str(data.get("executable", "")),
            sources=tuple(data.get("sources") or ()), sinks=tuple(data.get("sinks") or ()),
            functions=tuple(data.get("functions") or ()),
            virtual_env_type=data.get("virtualEnvType"), env=data.get("env"))

    def symbols(self) -> dict[str, tuple[str, ...]]:
        """The declared names by kind: ``{"sources": (...), "sinks": (...), ...}``."""
        return {"sources": self.sources, "sinks": self.sinks, "functions": self.functions}

    def summary(self) -> str:
        """``pysam 1.0 (python): 1 source, 1 sink, 1 function``."""
        parts = []
        for kind in KINDS:
            n = len(self.symbols()[kind])
            if n:
                parts.append(f"{n} {SINGULAR[kind]}{'' if n == 1 else 's'}")
        return f"{self.name} {self.version} ({self.language}): {', '.join(parts)}"


@dataclass
class Validation:
    """What ``validate`` found: the manifest (when readable) and every problem."""

    plugin_dir: Path
    manifest: Manifest | None = None
    problems: list[Problem] = field(default_factory=list)
    #: The symbols the code defines, from describe mode (None when not checked).
    defined: dict[str, list[str]] | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if not p.warning]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.warning]

    @property
    def ok(self) -> bool:
        return not self.errors


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


# ---------------------------------------------------------------------------
# Manifest


def schema_path() -> Path:
    """The JSON Schema of a manifest shipped inside the package.

    >>> schema_path().name
    'plugin.json'
    """
    return Path(__file__).with_name("plugin.json")


def check_executable_path(value: str) -> str | None:
    """Why ``value`` cannot be a manifest's ``executable``, or None when it can.

    eKuiper checks the zip holds an entry named exactly ``executable`` after cleaning the
    entry names, so only an already clean, relative, '/'-separated path ever matches.

    >>> check_executable_path("./main.py")
    "it must be a clean relative path such as 'main.py' (no leading '/', './' or '..')"
    >>> check_executable_path("main.py") is None
    True
    """
    parts = value.split("/")
    if (not value or value.startswith("/") or "\\" in value or "\x00" in value
            or any(p in ("", ".", "..") for p in parts)):
        clean = "/".join(p for p in parts if p not in ("", ".", "..")) or "main.py"
        return (f"it must be a clean relative path such as {clean!r} "
                "(no leading '/', './' or '..')")
    return None


def check_manifest(data: Any, name: str, where: str = "") -> list[Problem]:
    """Check decoded manifest JSON against plugin.json and eKuiper's own checks.

    Every message names the key and the fix. The rules are the schema's, written out so
    that each problem reads as one clear line without any extra package.

    >>> [str(p) for p in check_manifest({"version": "1", "language": "java",
    ...      "executable": "main.py", "sinks": ["s"]}, "demo", "demo.json")]
    ["demo.json: 'language' is 'java'; use one of: python, go"]
    """
    where = where or f"{name}.json"
    out: list[Problem] = []

    def bad(message: str, fix: str) -> None:
        out.append(Problem(where, message, fix))

    if not NAME_RE.match(name):
        bad(f"plugin name {name!r} is not usable in eKuiper paths and REST URLs",
            "rename the manifest to <name>.json with letters, digits, '_' or '-'")
    if not isinstance(data, dict):
        bad(f"a manifest must be a JSON object, got {type(data).__name__}",
            'write {"version": ..., "language": ..., "executable": ..., "sources": [...]}')
        return out
    for key in data:
        if key not in MANIFEST_KEYS:
            close = difflib.get_close_matches(str(key), MANIFEST_KEYS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else \
                f"remove it (known keys: {', '.join(MANIFEST_KEYS)})"
            bad(f"unknown key {key!r} (eKuiper ignores it)", hint)
    if "name" in data and data["name"] != name:
        bad(f"\"name\" is {data['name']!r} but the file is {name}.json; eKuiper installs the "
            f"plugin as {name!r} and rejects a different name",
            f"set \"name\": {name!r} or rename the file to {data['name']}.json")
    version = data.get("version")
    if version is None:
        bad("'version' is missing", 'add "version": "0.1.0"')
    elif not isinstance(version, str) or not version:
        bad(f"'version' must be a non-empty string, got {version!r}", 'write it as "1.0.0"')
    language = data.get("language")
    if language is None:
        bad("'language' is missing (eKuiper refuses the plugin)", 'add "language": "python"')
    elif language not in LANGUAGES:
        bad(f"'language' is {language!r}", f"use one of: {', '.join(LANGUAGES)}")
    exe = data.get("executable")
    if exe is None:
        bad("'executable' is missing (eKuiper refuses the plugin)", 'add "executable": "main.py"')
    elif not isinstance(exe, str):
        bad(f"'executable' must be a string, got {exe!r}", 'write it as "main.py"')
    else:
        why = check_executable_path(exe)
        if why:
            bad(f"'executable' {exe!r} never matches a zip entry as eKuiper compares them", why)
    total = 0
    for kind in KINDS:
        names = data.get(kind)
        if names is None:
            continue
        if not isinstance(names, list):
            bad(f"{kind!r} must be a list of names, got {type(names).__name__}",
                f'write "{kind}": ["name"]')
            continue
        seen = set()
        for item in names:
            pattern = FUNCTION_RE if kind == "functions" else NAME_RE
            if not isinstance(item, str) or not pattern.match(item):
                rule = ("a SQL identifier: a letter or '_', then letters, digits or '_'"
                        if kind == "functions" else "letters, digits, '_' or '-'")
                bad(f"{SINGULAR[kind]} name {item!r} is not valid", f"use {rule}")
            elif item in seen:
                bad(f"{SINGULAR[kind]} {item!r} is listed twice in {kind!r}", "remove one")
            if isinstance(item, str):
                seen.add(item)
        total += len(names)
    if total == 0:
        bad("no source, sink or function is declared (eKuiper refuses the plugin)",
            'list at least one, e.g. "functions": ["myfunc"]')
    vtype, env = data.get("virtualEnvType"), data.get("env")
    if vtype is not None and vtype not in VIRTUAL_ENV_TYPES:
        bad(f"'virtualEnvType' is {vtype!r}; eKuiper only knows 'conda'",
            "remove it or set \"virtualEnvType\": \"conda\"")
    if vtype is not None and (not isinstance(env, str) or not env):
        bad("'virtualEnvType' needs 'env', the conda environment to run in", 'add "env": "myenv"')
    if env is not None and vtype is None:
        bad("'env' is set without 'virtualEnvType', so eKuiper ignores it",
            'add "virtualEnvType": "conda" or remove "env"')
    elif env is not None and (not isinstance(env, str) or not env):
        bad(f"'env' must be a non-empty string, got {env!r}", 'write "env": "myenv"')
    return out


def check_manifest_schema(data: Any) -> list[str]:
    """Messages from validating ``data`` with ``jsonschema`` against plugin.json.

    Returns an empty list when ``jsonschema`` (the ``tools`` extra) is not installed: the
    built-in ``check_manifest`` covers the same rules with clearer messages.

    >>> check_manifest_schema({"version": "1", "language": "go", "executable": "x",
    ...                        "sinks": ["s"]})
    []
    """
    try:
        jsonschema = importlib.import_module("jsonschema")
    except ImportError:
        return []
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
            for e in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))]


def _looks_like_manifest(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and ("executable" in data or "language" in data)


def find_manifest(plugin_dir: PathLike, name: str | None = None) -> Path:
    """The manifest file of a plugin folder: ``<name>.json``, or the only root JSON file that
    looks like one. Raises ``PackagingError`` with the fix when there is none or several.

    >>> find_manifest("examples/pysam")            # doctest: +SKIP
    PosixPath('examples/pysam/pysam.json')
    """
    root = Path(plugin_dir)
    if not root.is_dir():
        raise PackagingError([Problem(str(root), "is not a folder",
                                      "pass the folder that holds <name>.json")])
    if name is not None:
        path = root / f"{name}.json"
        if not path.is_file():
            raise PackagingError([Problem(str(path), "missing",
                                          f"create the manifest {name}.json in {root}")])
        return path
    candidates = sorted(p for p in root.glob("*.json") if p.is_file() and _looks_like_manifest(p))
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        raise PackagingError([Problem(str(root), "several manifests: " + ", ".join(
            p.name for p in candidates), "pass --name to pick one")])
    nested = sorted(p for p in root.glob("*/*.json")
                    if p.stem == p.parent.name and _looks_like_manifest(p))
    fix = (f"did you mean {nested[0].parent}? (the zip root must hold the manifest)" if nested
           else "create <name>.json (see `ekuiper-plugin init`)")
    raise PackagingError([Problem(str(root), "no plugin manifest (<name>.json with \"language\" "
                                  "and \"executable\")", fix)])


def load_manifest(path: PathLike) -> tuple[Manifest | None, list[Problem]]:
    """Read and check one manifest file; the manifest is None when it has errors.

    >>> manifest, problems = load_manifest("pysam/pysam.json")   # doctest: +SKIP
    """
    path = Path(path)
    name = path.name.removesuffix(".json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return None, [Problem(str(path), f"cannot be read ({exc.strerror})", "check the path")]
    except (ValueError, UnicodeDecodeError) as exc:
        return None, [Problem(str(path), f"is not valid JSON ({exc})", "fix the syntax")]
    problems = check_manifest(data, name, str(path))
    if not problems:
        # The schema is the editors' view of the same rules; report anything only it sees.
        problems = [Problem(str(path), f"schema: {m}", "see plugin.json")
                    for m in check_manifest_schema(data)]
    if problems:
        return None, problems
    return Manifest.from_dict(data, name), []


# ---------------------------------------------------------------------------
# Files of a plugin folder


def _excluded(rel: PurePosixPath, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(part, pat) for part in rel.parts for pat in patterns) or \
        any(fnmatch.fnmatchcase(str(rel), pat) for pat in patterns)


def plugin_files(plugin_dir: PathLike, excludes: Sequence[str] = (),
                 skip: Iterable[PathLike] = ()) -> list[tuple[str, Path]]:
    """The files a plugin zip carries, as sorted ``(name in zip, path on disk)`` pairs.

    ``DEFAULT_EXCLUDES`` and ``excludes`` are glob patterns matched against every path
    component and against the whole relative path; ``skip`` lists files to leave out
    (such as the zip being written).

    >>> [name for name, _ in plugin_files("pysam")]       # doctest: +SKIP
    ['functions/revert.json', 'main.py', 'pysam.json', 'sources/pyjson.yaml']
    """
    root = Path(plugin_dir).resolve()
    skipped = {Path(s).resolve() for s in skip}
    patterns = list(DEFAULT_EXCLUDES) + list(excludes)
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        rel_dir = PurePosixPath(here.relative_to(root).as_posix())
        dirnames[:] = sorted(d for d in dirnames if not _excluded(rel_dir / d, patterns))
        for fname in filenames:
            rel = rel_dir / fname
            path = here / fname
            if _excluded(rel, patterns) or path.resolve() in skipped or not path.is_file():
                continue
            found.append((rel.as_posix(), path))
    return sorted(found)


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


def describe(plugin_dir: PathLike, manifest: Manifest, python: str | None = None,
             timeout: float = 30.0) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Run the executable in describe mode and return the symbols it defines.

    The plugin prints ``{"name", "sources", "sinks", "functions"}`` and exits without
    opening any socket when ``EKUIPER_SDK_DESCRIBE=1``; it runs from its own folder as
    eKuiper runs it. ``python`` defaults to this interpreter.

    >>> defined, problems = describe("pysam", manifest)          # doctest: +SKIP
    >>> defined["functions"]                                     # doctest: +SKIP
    ['revert']
    """
    root = Path(plugin_dir).resolve()
    exe = root / manifest.executable
    shown = str(Path(plugin_dir) / manifest.executable)
    env = dict(os.environ)
    env[DESCRIBE_ENV] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    cmd = [python or sys.executable, "-u", str(exe), json.dumps({"sendTimeout": 1000})]
    try:
        proc = subprocess.run(cmd, cwd=str(exe.parent), env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, [Problem(shown, f"printed no symbols within {timeout:g} s in describe mode",
                              "make sure it calls ekuiper_sdk's plugin.start(...) and does no "
                              "blocking work at import (the official 'ekuiper' package has no "
                              "describe mode)")]
    except OSError as exc:
        return None, [Problem(shown, f"cannot be started with {cmd[0]} ({exc.strerror})",
                              "pass --python with a working interpreter")]
    stderr = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    last_err = stderr[-1] if stderr else "no output"
    if proc.returncode != 0:
        return None, [Problem(shown, f"failed in describe mode (exit {proc.returncode}): "
                              f"{last_err}", f"run `{DESCRIBE_ENV}=1 python {manifest.executable}`"
                              " in the plugin folder to see why (missing requirement? install "
                              "them or pass --python)")]
    for line in reversed(proc.stdout.decode("utf-8", "replace").splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and all(isinstance(data.get(k), list) for k in KINDS):
            return data, []
    return None, [Problem(shown, "exited without printing its symbols in describe mode",
                          "call `plugin.start(PluginConfig(...))` from ekuiper_sdk at the end of "
                          "the script")]


def _check_symbols(manifest: Manifest, defined: Mapping[str, Any], where: str,
                   exe: str) -> list[Problem]:
    out: list[Problem] = []
    code_name = defined.get("name")
    if code_name != manifest.name:
        # The plugin dials ipc:///tmp/plugin_<its own name>.ipc; eKuiper listens at the
        # manifest's name, so a mismatch is a plugin that never completes its handshake.
        out.append(Problem(exe, f"PluginConfig names the plugin {code_name!r} but the manifest "
                           f"is {manifest.name}.json; eKuiper would wait for a handshake that "
                           "never comes", f"use PluginConfig({manifest.name!r}, ...)"))
    for kind in KINDS:
        have = set(defined.get(kind) or ())
        declared = manifest.symbols()[kind]
        listing = ", ".join(sorted(have)) or "none"
        for sym in declared:
            if sym not in have:
                out.append(Problem(where, f"{SINGULAR[kind]} {sym!r} is declared but {exe} does "
                                   f"not define it (it defines: {listing})",
                                   f"add {sym!r} to the {kind} of PluginConfig or remove it "
                                   "from the manifest"))
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
    files = plugin_files(root, excludes)
    result.problems.extend(_check_files(root, manifest, files, str(path)))
    if check_code and manifest.language == "python" and (root / manifest.executable).is_file():
        defined, problems = describe(root, manifest, python, timeout)
        result.problems.extend(problems)
        if defined is not None:
            result.defined = {k: list(defined.get(k) or []) for k in KINDS}
            result.problems.extend(_check_symbols(manifest, defined, str(path),
                                                  str(root / manifest.executable)))
    return result


# ---------------------------------------------------------------------------
# Zip and layout


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


def read_zip_manifest(zip_path: PathLike, name: str | None = None) -> Manifest:
    """The manifest at the root of a plugin zip, checked; ``PackagingError`` when absent or bad.

    >>> read_zip_manifest("pysam.zip").name                 # doctest: +SKIP
    'pysam'
    """
    path = Path(zip_path)
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise PackagingError([Problem(str(path), f"is not a readable zip ({exc})",
                                      "pass the zip written by `ekuiper-plugin pack`")]) from None
    with zf:
        root_json = [n for n in zf.namelist() if "/" not in n and n.endswith(".json")]
        if name is not None:
            candidates = [f"{name}.json"] if f"{name}.json" in root_json else []
        else:
            candidates = []
            for n in root_json:
                try:
                    data = json.loads(zf.read(n))
                except ValueError:
                    continue
                if isinstance(data, dict) and ("executable" in data or "language" in data):
                    candidates.append(n)
        if len(candidates) != 1:
            nested = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".json")]
            why = ("several manifests at its root: " + ", ".join(candidates) if candidates else
                   "no <name>.json at its root" + (f" (found {nested[0]} inside a top folder)"
                                                   if nested else ""))
            fix = ("pass --name" if candidates else
                   "pack the folder's content, not the folder (`ekuiper-plugin pack DIR`)")
            raise PackagingError([Problem(str(path), why, fix)])
        entry = candidates[0]
        plugin_name = entry[:-len(".json")]
        try:
            data = json.loads(zf.read(entry))
        except ValueError as exc:
            raise PackagingError([Problem(f"{path}:{entry}", f"is not valid JSON ({exc})",
                                          "fix the manifest and pack again")]) from None
        problems = check_manifest(data, plugin_name, f"{path}:{entry}")
        if problems:
            raise PackagingError(problems)
        return Manifest.from_dict(data, plugin_name)


def pack(plugin_dir: PathLike, output: PathLike | None = None, *, name: str | None = None,
         layout: PathLike | None = None, excludes: Sequence[str] = (),
         vendor: VendorOptions | None = None, python: str | None = None,
         check_code: bool = True, log: IO[str] | None = None) -> PackResult:
    """Validate a plugin folder, then write its zip (and/or its start-up layout).

    With ``vendor``, the wheels of the plugin's requirements and of ekuiper-sdk are added
    with an ``install.sh`` that installs them offline; every wheel is resolved before any
    output is written. ``output`` defaults to ``<name>.zip`` in the current folder when no
    ``layout`` is asked for. Raises ``PackagingError`` listing every problem.

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
    warnings = list(result.warnings)
    if vendor is not None:
        from .vendoring import vendor_entries

        if any(e.name == "install.sh" for e in entries):
            raise PackagingError([Problem(str(root / "install.sh"), "exists, and --vendor writes "
                                          "its own install.sh", "move its steps elsewhere or "
                                          "pack without --vendor")])
        entries += vendor_entries(root, manifest, vendor, log=log)
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
