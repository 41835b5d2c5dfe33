"""The start and stop commands' argument, the Control struct, as the Go host writes it."""

from __future__ import annotations

from typing import Any

from .gojson import go_value


def control_struct(symbol: str, plugin_type: str, rule_id: str, op_id: str, instance_id: int,
             datasource: str, config: dict[str, Any] | None) -> dict[str, Any]:
    """The Control struct in Go's field order, with Go's omitempty rules."""
    if plugin_type != "func":
        for kind, value in (("rule id", rule_id), ("op id", op_id)):
            if not value or "/" in value or "\x00" in value:
                raise ValueError(f"{kind} {value!r} cannot be part of a socket path")
    control: dict[str, Any] = {
        "symbolName": symbol,
        "meta": {"ruleId": rule_id, "opId": op_id, "instanceId": int(instance_id)},
        "pluginType": plugin_type,
    }
    if datasource:
        control["dataSource"] = datasource
    if config:
        control["config"] = go_value(dict(config))
    return control
