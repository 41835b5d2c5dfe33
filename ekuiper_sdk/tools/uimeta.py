"""The UI metadata files eKuiper reads for each symbol, written from what the code says.

eKuiper logs an error for every installed symbol without ``sources/<name>.json``,
``sinks/<name>.json`` or ``functions/<name>.json`` (at install and at every start), and its
web UI draws configuration forms, function hints and examples from them. ``pack`` writes
each missing one in the shape of eKuiper's own ``etc/*/*.json`` files: ``about`` (trial,
author, helpUrl, description per language), ``libs``, ``properties`` (for a source, keyed
by configuration name: ``default``) and ``node``; for a function, ``functions[]`` with
name, example, hint, args and return. The description is the docstring's first paragraph,
labels come from names, properties from the declared configuration
(:mod:`ekuiper_sdk.typed_config`) and from the ``default`` section of
``sources/<name>.yaml``, function arguments from the signature. Only English is known, so
``zh_CN`` repeats it. Files the author wrote are never replaced.

Example::

    entries = metadata_entries(manifest, files, listing["metadata"])
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .archive import ZipEntry
from .manifest import KINDS, SINGULAR, Manifest


def label(name: str) -> str:
    """A label from a symbol or property name.

    >>> label("demo_counter"), label("sendTimeout"), label("URL")
    ('Demo Counter', 'Send Timeout', 'URL')
    """
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).replace("-", " ").replace("_", " ")
    return " ".join(w[:1].upper() + w[1:] for w in words.split())


def lang(text: str) -> dict[str, str]:
    """eKuiper's per-language text; only English is known, so Chinese repeats it."""
    return {"en_US": text, "zh_CN": text}


def about(description: str) -> dict[str, Any]:
    """The ``about`` block: not a trial, no author or help page known from the code."""
    return {"trial": False,
            "author": {"name": "", "email": "", "company": "", "website": ""},
            "helpUrl": lang(""), "description": lang(description)}


def _node(kind: str, name: str) -> dict[str, Any]:
    return {"category": SINGULAR[kind], "icon": "iconPath", "label": lang(label(name))}


def _value_type(value: Any) -> tuple[str, str]:
    if isinstance(value, bool):
        return "bool", "radio"
    if isinstance(value, int):
        return "int", "text"
    if isinstance(value, float):
        return "float", "text"
    if isinstance(value, list):
        return "list_string", "list"
    if isinstance(value, dict):
        return "object", "list"
    return "string", "text"


def _ui_default(kind: str, value: Any) -> Any:
    # eKuiper reads a list default as nested property descriptions, so any list but an
    # empty one would make it refuse the whole file (its own files only ever hold []).
    if kind.startswith("list"):
        return []
    if kind == "object":
        return value if isinstance(value, dict) and not value else {}
    return value


def property_item(name: str, kind: str, control: str, default: Any, optional: bool,
                  hint: str = "", text: str = "", values: Sequence[Any] | None = None
                  ) -> dict[str, Any]:
    """One item of ``properties``.

    >>> property_item("interval", "int", "text", 1000, True)["label"]
    {'en_US': 'Interval', 'zh_CN': 'Interval'}
    """
    item: dict[str, Any] = {"name": name, "default": _ui_default(kind, default),
                            "optional": optional, "control": control, "type": kind,
                            "hint": lang(hint), "label": lang(text or label(name))}
    if values is not None:
        item["values"] = list(values)
    return item


def properties(declared: Sequence[Mapping[str, Any]],
               defaults: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Declared properties first (a default from the yaml wins over the code's), then the
    yaml's other keys with a type read from their value.

    >>> [p["name"] for p in properties([{"name": "url", "type": "string", "control": "text",
    ...                                  "optional": False}], {"interval": 10})]
    ['url', 'interval']
    """
    out = []
    for field in declared:
        name = str(field["name"])
        default = defaults.get(name, field.get("default", ""))
        out.append(property_item(name, str(field["type"]), str(field["control"]), default,
                                 bool(field.get("optional")),
                                 str(field.get("hint") or ""), str(field.get("label") or ""),
                                 field.get("values")))
    names = {p["name"] for p in out}
    for name, value in defaults.items():
        if name not in names:
            kind, control = _value_type(value)
            out.append(property_item(name, kind, control, value, True))
    return out


def yaml_defaults(text: str) -> dict[str, Any]:
    """The ``default`` section of a source's yaml, with PyYAML when installed, else read
    for its top-level ``key: scalar`` lines only.

    >>> yaml_defaults("default:\\n  interval: 1000\\n  name: 'x'\\nother:\\n  a: 1\\n")
    {'interval': 1000, 'name': 'x'}
    """
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        return _plain_defaults(text)
    try:
        data = yaml.safe_load(text)
    except Exception:  # noqa: BLE001 - validate reports bad yaml; no defaults then
        return {}
    section = data.get("default") if isinstance(data, dict) else None
    return dict(section) if isinstance(section, dict) else {}


def _plain_defaults(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    inside = False
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            inside = line.split(":", 1)[0].strip() == "default"
            continue
        match = re.match(r"^ {1,4}([A-Za-z0-9_-]+):\s*(.*?)\s*$", line)
        if inside and match and line[len(line) - len(line.lstrip()):][:1] != "-":
            raw = match.group(2)
            try:
                out[match.group(1)] = json.loads(raw) if raw else ""
            except ValueError:
                out[match.group(1)] = raw.strip("'\"")
    return out


def _description(kind: str, name: str, plugin: str, meta: Mapping[str, Any]) -> str:
    text = str(meta.get("description") or f"The {name} {SINGULAR[kind]} of the {plugin} "
               "plugin.")
    return text[:1].upper() + text[1:]


def source_file(plugin: str, name: str, meta: Mapping[str, Any],
                defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``sources/<name>.json``.

    >>> sorted(source_file("p", "s", {}, {"interval": 5}))
    ['about', 'libs', 'node', 'properties']
    """
    return {"about": about(_description("sources", name, plugin, meta)), "libs": [],
            "properties": {"default": properties(meta.get("properties") or [], defaults)},
            "node": _node("sources", name)}


def sink_file(plugin: str, name: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    """``sinks/<name>.json``."""
    return {"about": about(_description("sinks", name, plugin, meta)), "libs": [],
            "properties": properties(meta.get("properties") or [], {}),
            "node": _node("sinks", name)}


def function_file(plugin: str, name: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    """``functions/<name>.json``: one function, its example a call with its arguments.

    >>> f = function_file("p", "up", {"args": [{"name": "text", "type": "string",
    ...                                          "optional": False}]})
    >>> f["functions"][0]["example"]
    'up(text)'
    """
    description = _description("functions", name, plugin, meta)
    args = [{"name": str(a["name"]), "optional": bool(a.get("optional")), "control": "field",
             "type": str(a.get("type") or "any"), "hint": lang(""),
             "label": lang(label(str(a["name"])))} for a in meta.get("args") or []]
    required = [str(a["name"]) for a in args if not a["optional"]]
    function: dict[str, Any] = {
        "name": name, "example": f"{name}({', '.join(required)})", "hint": lang(description),
        "args": args, "return": {"type": str(meta.get("returns") or "any"), "hint": lang("")},
        "node": _node("functions", name)}
    if meta.get("aggregate"):
        function["aggregate"] = True
    return {"about": about(description), "name": name, "functions": [function]}


#: The warning ``validate`` gives for each missing file (``pack`` writes them, so it drops it).
MISSING_MESSAGE = "missing: eKuiper logs an error for it and its UI shows no form or hint"
MISSING_FIX = "`ekuiper-plugin pack` will write it from the code"


def missing_files(manifest: Manifest, names: Sequence[str]) -> list[str]:
    """The metadata files of declared symbols that the plugin does not have.

    >>> missing_files(Manifest("p", "1", "python", "m.py", functions=("f",)), [])
    ['functions/f.json']
    """
    have = set(names)
    return [f"{kind}/{sym}.json" for kind in KINDS for sym in manifest.symbols()[kind]
            if f"{kind}/{sym}.json" not in have]


def metadata_entries(manifest: Manifest, entries: Sequence[ZipEntry],
                     described: Mapping[str, Any] | None) -> list[ZipEntry]:
    """A zip entry for each missing metadata file; ``described`` is what the plugin's
    code listed (``None`` when the code was not loaded: names and yaml only).
    """
    by_name = {e.name: e for e in entries}
    described = described or {}
    out = []
    for path in missing_files(manifest, list(by_name)):
        kind, file_name = path.split("/", 1)
        name = file_name[:-len(".json")]
        meta = (described.get(kind) or {}).get(name) or {}
        if kind == "sources":
            yaml_entry = by_name.get(f"sources/{name}.yaml")
            text = yaml_entry.data.decode("utf-8", "replace") if yaml_entry else ""
            data = source_file(manifest.name, name, meta, yaml_defaults(text))
        elif kind == "sinks":
            data = sink_file(manifest.name, name, meta)
        else:
            data = function_file(manifest.name, name, meta)
        text_out = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        out.append(ZipEntry(path, text_out.encode("utf-8")))
    return out
