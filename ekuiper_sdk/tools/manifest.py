"""The one reader of a plugin's manifest, ``<name>.json``, in a folder or a zip.

What eKuiper does with a plugin zip (its ``internal/plugin/portable/manager.go``) decides
the rules: the zip root holds ``<name>.json`` (``name`` is the one given to the REST call)
with ``version``, ``language``, ``executable`` and at least one symbol. A leaf module:
everything that reads a manifest (validation, packing, the test hosts, the CLI) comes here.

Example::

    manifest = Manifest.from_dict(json.loads(find_manifest("pysam").read_text()), "pysam")
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from ..errors import PackagingError, Problem

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


def schema_path() -> Path:
    """The JSON Schema of a manifest shipped inside the package.

    >>> schema_path().name
    'plugin.json'
    """
    return Path(__file__).resolve().parent.parent / "plugin.json"


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


def json_problem(path: PathLike, exc: ValueError) -> Problem:
    """A JSON syntax error as ``file:line:column`` and the parser's message.

    >>> try: json.loads('{"a": 1')
    ... except ValueError as e: print(json_problem("p.json", e))
    p.json:1:8: is not valid JSON: Expecting ',' delimiter; fix the syntax
    """
    if isinstance(exc, json.JSONDecodeError):
        return Problem(f"{path}:{exc.lineno}:{exc.colno}", f"is not valid JSON: {exc.msg}",
                       "fix the syntax")
    return Problem(str(path), f"is not valid JSON ({exc})", "fix the syntax")


def _broken_json(root: Path) -> list[Problem]:
    """The root JSON files that do not parse: one of them is likely the manifest."""
    problems = []
    for path in sorted(root.glob("*.json")):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
        except ValueError as exc:
            problems.append(json_problem(path, exc))
    return problems


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
    broken = _broken_json(root)
    if broken:
        raise PackagingError(broken)
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
        return None, [json_problem(path, exc)]
    problems = check_manifest(data, name, str(path))
    if not problems:
        # The schema is the editors' view of the same rules; report anything only it sees.
        problems = [Problem(str(path), f"schema: {m}", "see plugin.json")
                    for m in check_manifest_schema(data)]
    if problems:
        return None, problems
    return Manifest.from_dict(data, name), []


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
        manifests = []
        for n in root_json:
            try:
                data = json.loads(zf.read(n))
            except ValueError:
                continue
            if isinstance(data, dict) and ("executable" in data or "language" in data):
                manifests.append(n)
        if name is not None:
            candidates = [f"{name}.json"] if f"{name}.json" in root_json else []
            if not candidates and manifests:
                others = ", ".join(manifests)
                raise PackagingError([Problem(
                    str(path), f"--name {name}: the zip's manifest is {others}, so it holds "
                    f"plugin {manifests[0][:-5]!r}, not {name!r}",
                    f"install it without --name (as {manifests[0][:-5]!r}), or rename the "
                    f"plugin to {name!r} in its manifest file name and in its code "
                    f"(PluginConfig/Plugin name) and pack it again")])
        else:
            candidates = manifests
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
            raise PackagingError([json_problem(f"{path}:{entry}", exc)]) from None
        problems = check_manifest(data, plugin_name, f"{path}:{entry}")
        if problems:
            raise PackagingError(problems)
        return Manifest.from_dict(data, plugin_name)
