"""The configuration eKuiper gives a portable source, built the way eKuiper builds it.

eKuiper v2 starts a source with one ``config`` object (internal/topo/node/conf/source.go):
the ``default`` section of ``sources/<name>.yaml``, the section the stream names with
``CONF_KEY`` written over it, then the stream's own properties written over both. The
stream's ``DATASOURCE`` travels there as ``datasource``; the start command's
``dataSource`` field stays empty. Seen on a real eKuiper for
``CREATE STREAM s () WITH (TYPE="probesrc", DATASOURCE="topicX", FORMAT="json",
CONF_KEY="other")``::

    {"datasource": "topicX", "delimiter": "", "format": "json", "fromyaml": 2,
     "interval": 0.1, "key": "", "retainSize": 0, "schemaId": "",
     "strictValidation": false, "timestamp": "", "timestampFormat": ""}

Reading the yaml file needs PyYAML (``pip install 'ekuiper-sdk[tools]'``); the plugin
runtime never reads it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..errors import SourceConfigError

#: The stream properties eKuiper writes over every source's configuration, with the values
#: a ``CREATE STREAM`` that sets none of them gives (``format`` is lower-cased).
STREAM_PROPERTIES: dict[str, Any] = {
    "format": "json",
    "key": "",
    "datasource": "",
    "schemaId": "",
    "delimiter": "",
    "retainSize": 0,
    "strictValidation": False,
    "timestamp": "",
    "timestampFormat": "",
}


def read_sections(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The sections of a ``sources/<name>.yaml`` file; ``{}`` when there is no such file.

    Example::

        read_sections("sources/pyjson.yaml")   # {"default": {"interval": 0.2}}
    """
    if not os.path.exists(path):
        return {}
    try:
        import yaml
    except ImportError:
        raise SourceConfigError(f"{os.fspath(path)}: reading it needs PyYAML; "
                                "pip install 'ekuiper-sdk[tools]'") from None
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        raise SourceConfigError(f"{os.fspath(path)}: {' '.join(str(exc).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) or v is None
                                             for v in data.values()):
        raise SourceConfigError(f"{os.fspath(path)}: must map section names (default, ...) "
                                "to mappings of properties")
    return {str(key): dict(value or {}) for key, value in data.items()}


def source_config(sections: Mapping[str, Mapping[str, Any]], conf_key: str | None = None,
                  *, datasource: str = "", stream: Mapping[str, Any] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``config`` eKuiper sends a source's start: yaml default, CONF_KEY, stream.

    ``overrides`` are written over the yaml sections before the stream's properties, as
    if they stood in the chosen section. ``stream`` sets stream properties other than
    ``datasource`` (``format``, ``key``...). A ``conf_key`` that names no section is
    ignored, as eKuiper does (it only logs a warning).

    >>> source_config({"default": {"interval": 1}, "fast": {"interval": 0.1}}, "fast",
    ...               datasource="t")["interval"]
    0.1
    >>> source_config({}, datasource="topicX")["datasource"]
    'topicX'
    """
    props: dict[str, Any] = dict(sections.get("default", {}))
    if conf_key:
        # eKuiper's etc folder lower-cases section names; its data folder does not.
        chosen = sections.get(conf_key.lower(), sections.get(conf_key))
        if chosen is not None:
            props.update(chosen)
    props.update(overrides or {})
    given = dict(stream or {})
    unknown = set(given) - set(STREAM_PROPERTIES)
    if unknown:
        raise ValueError(f"not a stream property: {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(STREAM_PROPERTIES)}")
    props.update(STREAM_PROPERTIES)
    props.update(given)
    props["format"] = str(props["format"]).lower()
    props["datasource"] = datasource
    return props
