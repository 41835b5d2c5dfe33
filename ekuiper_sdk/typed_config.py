"""A symbol's configuration declared as a dataclass (or a TypedDict): checked and converted
before ``configure`` sees it, and described for eKuiper's UI metadata files.

A source gets the section of ``sources/<name>.yaml`` its stream picks (merged over
``default``), a sink the properties of the rule's action; both arrive as a dict of JSON
values. Declare what the symbol reads::

    @dataclass
    class CounterConf:
        interval: int = 1000                       # milliseconds
        prefix: str = field(default="hello", metadata={"hint": "text before each number"})
        mode: Literal["up", "down"] = "up"

    @app.source("counter", config=CounterConf)     # or: class Counter(Source): config_type = ...
    def counter(ctx, datasource, conf: CounterConf): ...

``configure`` then receives a ``CounterConf``; a value that does not fit is refused in one
line naming the property (``property 'interval': expected an integer, got 'fast'``), which
eKuiper shows as the rule's error. Keys the class does not declare are ignored, since
eKuiper adds its own to a sink's properties. A leaf module: it imports only ``errors``.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from .errors import ConfigError

_MISSING: Any = dataclasses.MISSING
_NONE_TYPE = type(None)


@dataclass(frozen=True)
class ConfigField:
    """One declared property: its Python type, default (``MISSING`` when required), hint."""

    name: str
    type: Any
    default: Any = _MISSING
    hint: str = ""
    label: str = ""

    @property
    def required(self) -> bool:
        return self.default is _MISSING


#: The attribute a ``Source`` or ``Sink`` class declares its configuration type with.
CONFIG_TYPE_ATTR = "config_type"


def config_type_of(symbol: object, given: type | None = None) -> type | None:
    """The configuration type of a symbol, decided here and nowhere else: the one given
    when it was registered (``@app.sink(config=Conf)``), else the ``config_type`` its
    class (or instance) declares, else None (``configure`` gets the plain dict).

    The runtime converts a plain ``Source`` or ``Sink`` instance's configuration by it,
    the adapters convert for what they wrap, and the UI metadata describes it, so all
    three agree on every registration style.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Conf:
    ...     n: int = 0
    >>> class Printer:
    ...     config_type = Conf
    >>> config_type_of(Printer) is Conf, config_type_of(Printer(), given=None) is Conf
    (True, True)
    >>> config_type_of(lambda ctx, record: None) is None
    True
    """
    if given is not None:
        return given
    declared = getattr(symbol, CONFIG_TYPE_ATTR, None)
    return declared if isinstance(declared, type) else None


def configured(symbol: object, conf: dict[str, Any], given: type | None = None) -> Any:
    """``conf`` converted to the symbol's configuration type (:func:`config_type_of`), or
    the dict itself when it declares none.

    >>> configured(object(), {"n": "3"})
    {'n': '3'}
    """
    config_type = config_type_of(symbol, given)
    return conf if config_type is None else convert(config_type, conf)


def is_config_type(obj: object) -> bool:
    """Whether ``obj`` is a dataclass type or a TypedDict type.

    >>> from typing import TypedDict
    >>> class Conf(TypedDict):
    ...     url: str
    >>> is_config_type(Conf), is_config_type(dict)
    (True, False)
    """
    return isinstance(obj, type) and (dataclasses.is_dataclass(obj)
                                      or (issubclass(obj, dict) and hasattr(obj, "__total__")))


def config_fields(config_type: type) -> list[ConfigField]:
    """The declared properties of a dataclass or TypedDict, in declaration order.

    >>> @dataclass
    ... class Conf:
    ...     url: str
    ...     retries: int = 3
    >>> [(f.name, f.required) for f in config_fields(Conf)]
    [('url', True), ('retries', False)]
    """
    if not is_config_type(config_type):
        raise TypeError(f"config={config_type!r} must be a dataclass or a TypedDict class")
    hints = typing.get_type_hints(config_type)
    if dataclasses.is_dataclass(config_type):
        out = []
        for f in dataclasses.fields(config_type):
            default: Any = f.default
            factory: Any = f.default_factory
            if default is _MISSING and factory is not _MISSING:
                default = factory()
            out.append(ConfigField(f.name, hints.get(f.name, Any), default,
                                   str(f.metadata.get("hint", "")),
                                   str(f.metadata.get("label", ""))))
        return out
    optional: frozenset[str] = getattr(config_type, "__optional_keys__", frozenset())
    return [ConfigField(name, tp, None if name in optional else _MISSING)
            for name, tp in hints.items()]


def _kind(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    return typing.get_origin(tp), typing.get_args(tp)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def convert_value(tp: Any, value: Any, where: str) -> Any:
    """``value`` checked against ``tp`` and converted the way a YAML or JSON value can be:
    an integral number or a numeric string for ``int``, ``"true"``/``"false"`` for ``bool``.

    >>> convert_value(int, "12", "property 'n'")
    12
    >>> convert_value(list[float], [1, "2.5"], "property 'xs'")
    [1.0, 2.5]
    """
    origin, args = _kind(tp)
    if tp is Any or tp is object:
        return value
    if origin is Union:
        if value is None and _NONE_TYPE in args:
            return None
        options = [a for a in args if a is not _NONE_TYPE]
        errors = []
        for option in options:
            try:
                return convert_value(option, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else
                          f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{where}: expected one of {', '.join(map(repr, args))}, got {value!r}")
    if origin in (list, tuple, set, frozenset) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [convert_value(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin or tp) is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected an object, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if is_config_type(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected an object, got {value!r}")
        return convert(tp, value, f"{where}.")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def convert(config_type: type, conf: Mapping[str, Any], prefix: str = "") -> Any:
    """``conf`` as an instance of ``config_type`` (a dict for a TypedDict); ``ConfigError``
    naming the first property that is missing or does not fit.

    >>> @dataclass
    ... class Conf:
    ...     interval: int = 1000
    >>> convert(Conf, {"interval": "250", "extra": 1})
    Conf(interval=250)
    >>> convert(Conf, {"interval": "soon"})
    Traceback (most recent call last):
    ...
    ekuiper_sdk.errors.ConfigError: property 'interval': expected an integer, got 'soon'
    """
    values: dict[str, Any] = {}
    for f in config_fields(config_type):
        where = f"property '{prefix}{f.name}'"
        if f.name not in conf or (conf[f.name] is None and f.default is not None):
            if f.required:
                raise ConfigError(f"{where} is required; set it in the configuration")
            if f.default is not None or dataclasses.is_dataclass(config_type):
                values[f.name] = f.default
            continue
        values[f.name] = convert_value(f.type, conf[f.name], where)
    return config_type(**values)


def ui_type(tp: Any) -> tuple[str, str, list[Any] | None]:
    """eKuiper's ``(type, control, values)`` for a property of Python type ``tp``.

    >>> ui_type(bool), ui_type(list[str])
    (('bool', 'radio', None), ('list_string', 'list', None))
    """
    origin, args = _kind(tp)
    if origin is Union:
        options = [a for a in args if a is not _NONE_TYPE]
        return ui_type(options[0]) if len(options) == 1 else ("string", "text", None)
    if origin is typing.Literal:
        first = args[0] if args else ""
        kind = "int" if isinstance(first, int) and not isinstance(first, bool) else "string"
        return kind, "select", list(args)
    if origin in (list, tuple, set, frozenset) or tp in (list, tuple):
        item = ui_type(args[0])[0] if args else "string"
        return (f"list_{item}" if item in ("string", "int", "float", "bool") else "list_object",
                "list", None)
    if origin is dict or tp is dict or is_config_type(tp):
        return "object", "list", None
    names = {bool: "bool", int: "int", float: "float", str: "string"}
    kind = names.get(tp, "string")
    return kind, ("radio" if kind == "bool" else "text"), None


def describe_fields(config_type: type) -> list[dict[str, Any]]:
    """The declared properties as JSON-able dicts, for the UI metadata files.

    >>> @dataclass
    ... class Conf:
    ...     url: str
    >>> describe_fields(Conf)[0]["type"], describe_fields(Conf)[0]["optional"]
    ('string', False)
    """
    out = []
    for f in config_fields(config_type):
        kind, control, values = ui_type(f.type)
        item: dict[str, Any] = {"name": f.name, "type": kind, "control": control,
                                "optional": not f.required, "hint": f.hint, "label": f.label}
        if not f.required and _json_able(f.default):
            item["default"] = f.default
        if values is not None:
            item["values"] = values
        out.append(item)
    return out


def _json_able(value: Any) -> bool:
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_json_able(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_able(v) for k, v in value.items())
    return False
