"""What a plugin's code says about its symbols, for the UI metadata files ``pack`` writes.

Runs inside the plugin process when it lists its symbols (``EKUIPER_SDK_LIST_SYMBOLS``):
the description is the first paragraph of the docstring, a source's or sink's properties
come from its declared configuration (:mod:`.typed_config`), a function's arguments from
its signature: :func:`sql_parameters` is the one rule for which parameters SQL fills,
which ``Validate`` and the call also follow (``decorators/``). The result is plain JSON;
``ekuiper_sdk.tools.uimeta`` turns it into eKuiper's file shapes, outside the plugin.

Example::

    describe(app.config())["functions"]["revert"]
    # {'description': 'The text backwards.', 'args': [{'name': 's', 'type': 'string',
    #   'optional': False}], 'returns': 'string', 'aggregate': False}
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Mapping
from typing import Any, Callable, Protocol

from .typed_config import config_type_of, describe_fields, is_config_type

_ARG_TYPES: dict[Any, str] = {str: "string", int: "int", float: "float", bool: "bool",
                              list: "array", dict: "object", bytes: "bytes"}


def _summary(obj: object) -> str:
    # Its own docstring only: inspect.getdoc would give a bare subclass the base class's.
    doc = inspect.cleandoc(getattr(obj, "__doc__", None) or "")
    return " ".join(doc.split("\n\n", 1)[0].split())


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - an annotation that cannot be evaluated just goes
        return {}


def _arg_type(tp: Any) -> str:
    origin = typing.get_origin(tp)
    return _ARG_TYPES.get(origin or tp, "any")


#: The names of a first parameter that receives the call's context.
CONTEXT_NAMES = ("ctx", "context")


def _is_context(param: inspect.Parameter) -> bool:
    if param.name in CONTEXT_NAMES:
        return True
    annotation = param.annotation
    if isinstance(annotation, str):  # postponed annotations are kept as text
        return annotation.strip("'\" ").rsplit(".", 1)[-1] == "Context"
    from .api import Context

    return isinstance(annotation, type) and issubclass(annotation, Context)


def sql_parameters(fn: Callable[..., Any]) -> tuple[bool, list[inspect.Parameter]]:
    """Whether ``fn`` takes the call's context first, and the parameters SQL fills.

    The one rule for the context parameter, read by ``Validate``
    (``decorators.signatures.arity_of``), by the call (``FunctionAdapter.exec``) and by
    the UI metadata (:func:`function_args`): a first positional
    parameter named ``ctx`` or ``context``, or annotated ``Context``, is the context.
    Raises ``TypeError`` or ``ValueError`` when the signature cannot be read.

    >>> def scale(context, x, factor=2): ...
    >>> wants, params = sql_parameters(scale)
    >>> wants, [p.name for p in params]
    (True, ['x', 'factor'])
    """
    params = list(inspect.signature(fn).parameters.values())
    wants_context = bool(params) and params[0].kind in (
        inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) \
        and _is_context(params[0])
    return wants_context, params[1:] if wants_context else params


def function_args(fn: Callable[..., Any]) -> tuple[list[dict[str, Any]], str]:
    """The SQL arguments of a decorated function, and its return type, from its signature
    (the context parameter is no argument: :func:`sql_parameters` says which).

    >>> args, returns = function_args(lambda context, s, n=1: s)
    >>> [(a["name"], a["optional"]) for a in args], returns
    ([('s', False), ('n', True)], 'any')
    """
    try:
        _, params = sql_parameters(fn)
    except (TypeError, ValueError):
        return [], "any"
    hints = _hints(fn)
    args = []
    for p in params:
        if p.kind is p.VAR_KEYWORD:
            continue
        args.append({"name": p.name, "type": _arg_type(hints.get(p.name, Any)),
                     "optional": p.default is not p.empty or p.kind is p.VAR_POSITIONAL})
    return args, _arg_type(hints.get("return", Any))


def _entry(kind: str, symbol: str, factory: object, info: dict[str, Any]) -> dict[str, Any]:
    target: Any = info.get("target", factory)
    out: dict[str, Any] = {"description": _summary(target)}
    if kind == "functions":
        is_class = isinstance(target, type)
        args, returns = ([], "any") if is_class else function_args(target)
        # A class says nothing of its SQL arguments but may in its docstring: "f(a, b): ...".
        called = re.match(rf"^{re.escape(symbol)}\(([^)]*)\)\s*:?\s*(.*)$", out["description"])
        if is_class and called:
            names = [n.strip() for n in called.group(1).split(",") if n.strip()]
            args = [{"name": n.strip("[]= "), "type": "any", "optional": "=" in n or "[" in n}
                    for n in names]
            out["description"] = called.group(2) or out["description"]
        out.update(args=args, returns=returns, aggregate=bool(info.get("aggregate")))
        if is_class and callable(getattr(target, "is_aggregate", None)):
            try:
                out["aggregate"] = bool(target().is_aggregate())
            except Exception:  # noqa: BLE001 - a constructor needing more than nothing
                pass
        return out
    config = config_type_of(target, info.get("config"))
    out["properties"] = describe_fields(config) if isinstance(config, type) and \
        is_config_type(config) else []
    return out


class _Symbols(Protocol):
    """What is read of a ``PluginConfig``: its factories, and what the decorators noted."""

    @property
    def sources(self) -> Mapping[str, Callable[[], object]]: ...

    @property
    def sinks(self) -> Mapping[str, Callable[[], object]]: ...

    @property
    def functions(self) -> Mapping[str, Callable[[], object]]: ...

    @property
    def described(self) -> Mapping[str, Mapping[str, Mapping[str, Any]]]: ...


def symbol_metadata(config: _Symbols) -> dict[str, dict[str, dict[str, Any]]]:
    """Per kind and symbol, the description, properties or arguments the code declares.

    >>> from ekuiper_sdk import Function, PluginConfig
    >>> class Upper(Function):
    ...     '''The text in upper case.'''
    >>> listed = symbol_metadata(PluginConfig("p", functions={"up": Upper}))
    >>> listed["functions"]["up"]["description"]
    'The text in upper case.'
    """
    tables: dict[str, dict[str, Callable[[], object]]] = {
        "sources": dict(config.sources), "sinks": dict(config.sinks),
        "functions": dict(config.functions)}
    return {kind: {symbol: _entry(kind, symbol, factory,
                                  dict(config.described.get(kind, {}).get(symbol, {})))
                   for symbol, factory in sorted(table.items())}
            for kind, table in tables.items()}
