"""The source configuration keys that eKuiper overwrites with the stream's properties.

eKuiper v2 builds a portable source's configuration from the ``default`` section of
``sources/<name>.yaml``, the ``CONF_KEY`` section over it, and then writes the stream's
own properties over both (internal/topo/node/conf/source.go), whether the stream sets
them or not. So a yaml key or a declared configuration field with one of these names
never reaches ``configure`` with its own value: seen on eKuiper v2.4, ``delimiter: ";"``
in the yaml arrived as ``""``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: Each overwritten key, the stream property it comes from, and the value a
#: ``CREATE STREAM`` that does not set it gives (``format`` is lower-cased).
STREAM_PROPERTIES: dict[str, tuple[str, Any]] = {
    "format": ("FORMAT", "json"),
    "key": ("KEY", ""),
    "datasource": ("DATASOURCE", ""),
    "schemaId": ("SCHEMAID", ""),
    "delimiter": ("DELIMITER", ""),
    "retainSize": ("RETAIN_SIZE", 0),
    "strictValidation": ("STRICT_VALIDATION", False),
    "timestamp": ("TIMESTAMP", ""),
    "timestampFormat": ("TIMESTAMP_FORMAT", ""),
}


def overwritten(keys: Iterable[str]) -> list[tuple[str, str]]:
    """The keys eKuiper overwrites, each with the stream property that wins.

    >>> overwritten(["interval", "delimiter"])
    [('delimiter', 'DELIMITER')]
    """
    return [(key, STREAM_PROPERTIES[key][0]) for key in keys if key in STREAM_PROPERTIES]


def warning_text(what: str, key: str, prop: str) -> str:
    """One line: what happens to the key (``what`` names the kind of key), and why.

    >>> warning_text("key", "delimiter", "DELIMITER").split(";")[0]
    "key 'delimiter' is overwritten by eKuiper with the stream's DELIMITER property"
    """
    default = STREAM_PROPERTIES[key][1]
    return (f"{what} {key!r} is overwritten by eKuiper with the stream's {prop} property; "
            f"configure never sees this value (it gets {default!r} unless the stream sets "
            f"{prop})")
