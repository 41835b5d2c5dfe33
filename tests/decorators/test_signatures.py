"""Arity checks read from Python signatures (what ``Validate`` answers)."""

from __future__ import annotations

from typing import Any

import pytest

from ekuiper_sdk import Context
from ekuiper_sdk.decorators.signatures import Arity, arity_of, check_callable


def test_required_optional_and_varargs_are_counted() -> None:
    def one(s: str) -> str: raise NotImplementedError
    def opt(x: float, low: float = 0, high: float = 1) -> float: raise NotImplementedError
    def var(first: str, *rest: str) -> str: raise NotImplementedError
    def anything(*args: Any) -> Any: raise NotImplementedError
    def none() -> int: raise NotImplementedError

    assert arity_of(one, "f") == Arity("f", 1, 1)
    assert arity_of(opt, "f") == Arity("f", 1, 3)
    assert arity_of(var, "f") == Arity("f", 1, None)
    assert arity_of(anything, "f") == Arity("f", 0, None)
    assert arity_of(none, "f") == Arity("f", 0, 0)


@pytest.mark.parametrize("count, problem", [
    (0, "revert takes 1 argument, got 0"),
    (1, ""),
    (2, "revert takes 1 argument, got 2"),
])
def test_exact_arity_messages(count: int, problem: str) -> None:
    assert Arity("revert", 1, 1).problem(count) == problem


def test_range_and_open_ended_messages() -> None:
    assert Arity("f", 0, 0).problem(1) == "f takes 0 arguments, got 1"
    assert Arity("f", 2, 2).problem(1) == "f takes 2 arguments, got 1"
    assert Arity("f", 1, 3).problem(4) == "f takes 1 to 3 arguments, got 4"
    assert Arity("f", 2, None).problem(1) == "f takes at least 2 arguments, got 1"
    assert Arity("f", 2, None).problem(50) == ""


def test_a_first_ctx_parameter_is_the_context_not_an_argument() -> None:
    def by_name(ctx, s):  # type: ignore[no-untyped-def]
        ...

    def by_annotation(c: Context, s: str) -> str: raise NotImplementedError
    def by_text_annotation(c: Context, s: str) -> str: raise NotImplementedError
    def ctx_later(s: str, ctx: Any) -> str: raise NotImplementedError

    assert arity_of(by_name, "f") == Arity("f", 1, 1, wants_context=True)
    assert arity_of(by_annotation, "f").wants_context
    assert arity_of(by_text_annotation, "f").wants_context
    assert arity_of(ctx_later, "f") == Arity("f", 2, 2)  # only the first parameter counts


def test_keyword_only_without_default_is_refused_with_the_fix() -> None:
    def f(x: int, *, unit: str) -> str: raise NotImplementedError
    def g(x: int, *, unit: str = "m") -> str: raise NotImplementedError

    with pytest.raises(TypeError, match="'unit' is keyword-only with no default.*give it"):
        arity_of(f, "f")
    assert arity_of(g, "g") == Arity("g", 1, 1)


def test_bound_methods_and_callable_objects() -> None:
    class Scaler:
        def __init__(self, k: float) -> None:
            self.k = k

        def scale(self, x: float) -> float:
            return self.k * x

        def __call__(self, x: float, y: float = 0) -> float:
            return x + y

    assert arity_of(Scaler(2).scale, "scale") == Arity("scale", 1, 1)
    assert arity_of(Scaler(2), "add") == Arity("add", 1, 2)


def test_check_callable_refuses_a_source_or_sink_with_the_wrong_parameters() -> None:
    def good(ctx: Any, datasource: str, conf: dict) -> None: ...  # type: ignore[type-arg]
    def defaults(ctx: Any, datasource: str = "", conf: Any = None, extra: int = 0) -> None: ...
    def varargs(*args: Any) -> None: ...
    def too_few(ctx: Any) -> None: ...
    def too_many(ctx: Any, a: Any, b: Any, c: Any) -> None: ...

    for fn in (good, defaults, varargs):
        check_callable("source", "s", fn, "ctx, datasource, conf")
    with pytest.raises(TypeError, match=r"source 's' must take \(ctx, datasource, conf\); "
                                        r"too_few takes 1 positional argument$"):
        check_callable("source", "s", too_few, "ctx, datasource, conf")
    with pytest.raises(TypeError, match="too_many takes 4 positional arguments"):
        check_callable("source", "s", too_many, "ctx, datasource, conf")
