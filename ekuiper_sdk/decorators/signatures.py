"""What a Python callable's signature says about how SQL may call it.

A function registered with ``@app.function`` is checked when a rule is created (eKuiper's
``Validate``): the number of arguments in the SQL call must fit the Python parameters.
Parameters with defaults are optional and ``*args`` takes any number more; a first
parameter named ``ctx`` or ``context`` (or annotated ``Context``) receives the call's
context and is not an SQL argument (``metadata.sql_parameters``, the one place that
says so). Keyword-only parameters without a default cannot be filled from SQL, so they are
refused when the function is registered.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from ..metadata import sql_parameters


@dataclass(frozen=True)
class Arity:
    """How many SQL arguments a function takes, and whether it wants the context first."""

    name: str
    required: int
    maximum: int | None  # None: any number (``*args``)
    wants_context: bool = False

    def problem(self, count: int) -> str:
        """``""`` when ``count`` arguments fit, else one line saying what fits.

        >>> Arity("revert", 1, 1).problem(2)
        'revert takes 1 argument, got 2'
        >>> Arity("clamp", 1, 3).problem(0)
        'clamp takes 1 to 3 arguments, got 0'
        >>> Arity("concat", 1, None).problem(0)
        'concat takes at least 1 argument, got 0'
        """
        if count >= self.required and (self.maximum is None or count <= self.maximum):
            return ""
        return f"{self.name} takes {self.expected()}, got {count}"

    def expected(self) -> str:
        if self.maximum is None:
            return f"at least {_args(self.required)}"
        if self.maximum == self.required:
            return _args(self.required)
        return f"{self.required} to {_args(self.maximum)}"


def _args(n: int) -> str:
    return f"{n} argument" if n == 1 else f"{n} arguments"


def arity_of(fn: Callable[..., Any], name: str) -> Arity:
    """Read the arity of ``fn``, for the SQL function called ``name``.

    >>> def clamp(ctx, x, low=0, high=1): ...
    >>> arity_of(clamp, "clamp")
    Arity(name='clamp', required=1, maximum=3, wants_context=True)
    """
    try:
        wants_context, params = sql_parameters(fn)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"function {name!r}: cannot read the signature of {fn!r} ({exc}); "
                        "register a plain function or a Function subclass") from None
    required, maximum = 0, 0
    unbounded = False
    for param in params:
        if param.kind in (inspect.Parameter.POSITIONAL_ONLY,
                          inspect.Parameter.POSITIONAL_OR_KEYWORD):
            maximum += 1
            if param.default is inspect.Parameter.empty:
                required += 1
        elif param.kind is inspect.Parameter.VAR_POSITIONAL:
            unbounded = True
        elif param.kind is inspect.Parameter.KEYWORD_ONLY \
                and param.default is inspect.Parameter.empty:
            raise TypeError(f"function {name!r}: parameter {param.name!r} is keyword-only "
                            "with no default, which SQL cannot pass; give it a default or "
                            "make it positional")
    return Arity(name, required, None if unbounded else maximum, wants_context)


def check_callable(kind: str, name: str, fn: Callable[..., Any], params: str) -> None:
    """Refuse at registration a callable that cannot take the runtime's arguments.

    ``params`` names them, e.g. ``"ctx, datasource, conf"``.

    >>> check_callable("source", "s", lambda ctx: None, "ctx, datasource, conf")
    Traceback (most recent call last):
    ...
    TypeError: source 's' must take (ctx, datasource, conf); <lambda> takes 1 positional argument
    """
    wanted = len(params.split(","))
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins and some C callables: find out when called
    positional = [p for p in signature.parameters.values()
                  if p.kind in (inspect.Parameter.POSITIONAL_ONLY,
                                inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is inspect.Parameter.empty]
    varargs = any(p.kind is inspect.Parameter.VAR_POSITIONAL
                  for p in signature.parameters.values())
    if len(required) <= wanted and (varargs or len(positional) >= wanted):
        return
    label = getattr(fn, "__name__", type(fn).__name__)
    raise TypeError(f"{kind} {name!r} must take ({params}); {label} takes "
                    f"{_positional(len(positional))}")


def _positional(n: int) -> str:
    return f"{n} positional argument" if n == 1 else f"{n} positional arguments"
