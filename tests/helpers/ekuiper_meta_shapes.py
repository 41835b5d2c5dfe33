"""What eKuiper v2 accepts as UI metadata files, written from how its ``internal/meta``
decodes them (``fileSource``, ``fileSink``, the functions file), to check generated files
independently of the code that writes them. Each check returns the problems found."""

from __future__ import annotations

from typing import Any

LANGUAGES = ("en_US", "zh_CN")
FIELD_KEYS = {"name": str, "optional": bool, "control": str, "type": str}


def _language(value: Any, where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: not an object of languages"]
    return [f"{where}.{lang}: not a string" for lang in LANGUAGES
            if not isinstance(value.get(lang), str)]


def check_about(about: Any) -> list[str]:
    # eKuiper refuses a source file without "about" ("not found about of ...").
    if not isinstance(about, dict):
        return ["about: missing"]
    out = [] if isinstance(about.get("trial"), bool) else ["about.trial: not a bool"]
    author = about.get("author")
    if not isinstance(author, dict) or any(not isinstance(author.get(k), str)
                                           for k in ("name", "email", "company", "website")):
        out.append("about.author: needs name, email, company, website strings")
    out += _language(about.get("helpUrl"), "about.helpUrl")
    out += _language(about.get("description"), "about.description")
    return out


def check_fields(fields: Any, where: str) -> list[str]:
    if not isinstance(fields, list):
        return [f"{where}: not a list"]
    out = []
    for i, f in enumerate(fields):
        at = f"{where}[{i}]"
        if not isinstance(f, dict):
            out.append(f"{at}: not an object")
            continue
        out += [f"{at}.{k}: not {t.__name__}" for k, t in FIELD_KEYS.items()
                if not isinstance(f.get(k), t)]
        if "default" not in f:
            out.append(f"{at}.default: missing")
        # A list default is decoded as nested fields: only objects (or nothing) fit.
        if isinstance(f.get("default"), list) and any(not isinstance(x, dict)
                                                       for x in f["default"]):
            out.append(f"{at}.default: a list of non-objects, which eKuiper cannot decode")
        out += _language(f.get("hint"), f"{at}.hint") + _language(f.get("label"), f"{at}.label")
    return out


def check_source(data: Any) -> list[str]:
    if not isinstance(data, dict):
        return ["not an object"]
    out = check_about(data.get("about"))
    props = data.get("properties")
    if not isinstance(props, dict):
        return out + ["properties: not an object keyed by configuration name"]
    for key, fields in props.items():
        out += check_fields(fields, f"properties.{key}")
    return out


def check_sink(data: Any) -> list[str]:
    if not isinstance(data, dict):
        return ["not an object"]
    return check_about(data.get("about")) + check_fields(data.get("properties"), "properties")


def check_functions(data: Any) -> list[str]:
    if not isinstance(data, dict):
        return ["not an object"]
    out = check_about(data.get("about"))
    functions = data.get("functions")
    if not isinstance(functions, list) or not functions:
        return out + ["functions: not a non-empty list"]
    for i, fn in enumerate(functions):
        at = f"functions[{i}]"
        for key in ("name", "example"):
            if not isinstance(fn.get(key), str):
                out.append(f"{at}.{key}: not a string")
        out += _language(fn.get("hint"), f"{at}.hint")
        args = fn.get("args")
        if not isinstance(args, list):
            out.append(f"{at}.args: not a list")
            continue
        for j, arg in enumerate(args):
            out += [f"{at}.args[{j}].{k}: not {t.__name__}" for k, t in FIELD_KEYS.items()
                    if not isinstance(arg.get(k), t)]
    return out


CHECKS = {"sources": check_source, "sinks": check_sink, "functions": check_functions}
