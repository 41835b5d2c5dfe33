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

Reading the yaml file needs PyYAML (``pip install pyyaml``, or the SDK's ``tools``
extra); the plugin runtime never reads it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

from ..errors import SourceConfigError, SourceConfigWarning
from ..tools.stream_keys import STREAM_PROPERTIES as _OVERWRITTEN

#: The stream properties eKuiper writes over every source's configuration, with the values
#: a ``CREATE STREAM`` that sets none of them gives (``format`` is lower-cased).
STREAM_PROPERTIES: dict[str, Any] = {key: default for key, (_, default)
                                     in _OVERWRITTEN.items()}


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
                                "pip install pyyaml (or the SDK's tools extra)") from None
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


def _section(sections: Mapping[str, Mapping[str, Any]],
             conf_key: str) -> Mapping[str, Any] | None:
    # eKuiper's etc folder lower-cases section names; its data folder does not.
    return sections.get(conf_key.lower(), sections.get(conf_key))


def missing_conf_key(sections: Mapping[str, Mapping[str, Any]], conf_key: str | None,
                     symbol: str, path: str | os.PathLike[str]) -> str | None:
    """The warning for a ``conf_key`` that names no section of the yaml, else ``None``.

    eKuiper v2.4 starts such a stream's source with the ``default`` section alone and logs
    ``fail to find config key <key> for source <symbol>`` at level warning (seen on a
    real one); the rule runs. The text says the same and names the file.

    >>> print(missing_conf_key({"default": {}}, "fast", "ticker", "sources/ticker.yaml"))
    ... # doctest: +NORMALIZE_WHITESPACE
    sources/ticker.yaml has no section 'fast' (CONF_KEY): the source starts with the
    default section alone, as eKuiper does (its log says: fail to find config key fast
    for source ticker)
    >>> missing_conf_key({"default": {}, "fast": {}}, "FAST", "ticker", "x.yaml") is None
    True
    """
    if not conf_key or _section(sections, conf_key) is not None:
        return None
    return (f"{os.fspath(path)} has no section '{conf_key}' (CONF_KEY): the source starts "
            f"with the default section alone, as eKuiper does (its log says: fail to find "
            f"config key {conf_key} for source {symbol})")


def source_config(sections: Mapping[str, Mapping[str, Any]], conf_key: str | None = None,
                  *, datasource: str = "", stream: Mapping[str, Any] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``config`` eKuiper sends a source's start: yaml default, CONF_KEY, stream.

    ``overrides`` are written over the yaml sections before the stream's properties, as
    if they stood in the chosen section. ``stream`` sets stream properties other than
    ``datasource`` (``format``, ``key``...). A ``conf_key`` that names no section is
    ignored, as eKuiper does (it only logs a warning: :func:`missing_conf_key`).

    >>> source_config({"default": {"interval": 1}, "fast": {"interval": 0.1}}, "fast",
    ...               datasource="t")["interval"]
    0.1
    >>> source_config({}, datasource="topicX")["datasource"]
    'topicX'
    """
    props: dict[str, Any] = dict(sections.get("default", {}))
    if conf_key:
        props.update(_section(sections, conf_key) or {})
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


def start_config(yaml_path: str | os.PathLike[str], symbol: str, conf_key: str | None = None,
                 *, datasource: str = "", stream: Mapping[str, Any] | None = None,
                 overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:func:`source_config` from the file ``yaml_path``, the way a start needs it.

    A ``conf_key`` the file has no section for is a :class:`SourceConfigWarning` (with
    :func:`missing_conf_key`'s text), where eKuiper logs a warning and runs the rule.

    Example::

        start_config("plugins/pysam/sources/pyjson.yaml", "pyjson", datasource="t")
    """
    sections = read_sections(yaml_path)
    config = source_config(sections, conf_key, datasource=datasource, stream=stream,
                           overrides=overrides)
    missing = missing_conf_key(sections, conf_key, symbol, yaml_path)
    if missing is not None:
        # stacklevel 3: the caller of PluginHost.start_source, where a test shows it.
        warnings.warn(missing, SourceConfigWarning, stacklevel=3)
    return config
