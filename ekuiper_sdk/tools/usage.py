"""Which rules use a plugin, by name and state: what ``status`` and ``dev`` print.

eKuiper's plugin status counts, per rule, the starts it sent for the rule (``refCount``);
seen on eKuiper v2.4, a rule that only calls one of the plugin's functions is not in it.
A rule calls a function from its SQL, reads a source through a stream whose ``TYPE`` is
the source, and names a sink in its actions: the rule list says all three, so the rules
are found there, with their state, and ``refCount`` only adds any it missed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

from . import rest
from .manifest import Manifest

__all__ = ["rules_using", "describe_rules"]


def rules_using(client: rest.RestClient, manifest: Manifest) -> list[tuple[str, str]]:
    """``(rule id, status)`` of the rules whose SQL calls one of the plugin's functions or
    reads a stream of one of its sources, or whose actions use one of its sinks.

    >>> rules_using(RestClient("http://127.0.0.1:9081"), manifest)    # doctest: +SKIP
    [('rule1', 'running')]
    """
    streams = set()
    for stream in client.request("GET", "/streams").json() or []:
        # eKuiper v2 lists names, and describes a stream with its options in lower case.
        name = stream if isinstance(stream, str) else str(stream.get("name", ""))
        info = client.request("GET", "/streams/" + quote(name, safe="")).json()
        options = (info.get("Options") or {}) if isinstance(info, dict) else {}
        kind = str(options.get("type") or options.get("TYPE") or "")
        if kind in manifest.sources:
            streams.add(name)
    words = [re.escape(f) for f in manifest.functions] + [re.escape(s) for s in streams]
    pattern = re.compile(rf"\b({'|'.join(words)})\b", re.IGNORECASE) if words else None
    found = []
    for rule in client.request("GET", "/rules").json() or []:
        rule_id = str(rule.get("id", ""))
        detail = client.request("GET", "/rules/" + quote(rule_id, safe="")).json()
        if not isinstance(detail, dict):
            continue
        sql = str(detail.get("sql", ""))
        actions = detail.get("actions") or []
        sinks = {key for action in actions if isinstance(action, dict) for key in action}
        if (pattern is not None and pattern.search(sql)) or sinks & set(manifest.sinks):
            found.append((rule_id, str(rule.get("status", ""))))
    return sorted(found)


def describe_rules(client: rest.RestClient, name: str,
                   ref_rules: Iterable[str] = ()) -> list[tuple[str, str]]:
    """``(rule id, state)`` of every rule using the installed plugin ``name``: those its
    description's symbols find, and those eKuiper's ``refCount`` names.

    >>> describe_rules(RestClient("http://127.0.0.1:9081"), "pysam")   # doctest: +SKIP
    [('rule1', 'running')]
    """
    info = client.describe(name)
    manifest = Manifest(name, str(info.get("version") or ""), str(info.get("language") or ""),
                        str(info.get("executable") or ""), sources=_names(info, "sources"),
                        sinks=_names(info, "sinks"), functions=_names(info, "functions"))
    found = dict(rules_using(client, manifest))
    missing = [rule for rule in ref_rules if rule not in found]
    if missing:
        states = {str(r.get("id", "")): str(r.get("status", ""))
                  for r in client.request("GET", "/rules").json() or []}
        found.update((rule, states.get(rule, "unknown")) for rule in missing)
    return sorted(found.items())


def _names(info: dict[str, object], kind: str) -> tuple[str, ...]:
    value = info.get(kind)
    return tuple(str(v) for v in value) if isinstance(value, list) else ()
