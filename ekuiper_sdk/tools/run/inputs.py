"""What ``ekuiper-plugin run`` reads from its command line: ``key=value`` properties,
function arguments written as SQL-like expressions, and JSON-lines files.

The expressions are the small part of eKuiper's SQL a function call's arguments need:
field names (``x``, ``a.b`` for a nested field, ```odd name```), numbers, ``'strings'``
(``''`` inside is one quote; ``"strings"`` too), ``true``, ``false``, ``null`` and lists
``[1, 2]``. A missing field is ``null``, as in a rule.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, Union

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    | '(?P<single>(?:[^']|'')*)'
    | "(?P<double>(?:[^"]|"")*)"
    | `(?P<quoted>[^`]+)`
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    | (?P<punct>[,\[\]])
    )""", re.VERBOSE)

_KEYWORDS: dict[str, Any] = {"true": True, "false": False, "null": None}


@dataclass(frozen=True)
class Field:
    """A reference to a record's field; ``path`` has one name per level of nesting."""

    path: tuple[str, ...]

    def __str__(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class Literal:
    """A constant written in the expression."""

    value: Any


@dataclass(frozen=True)
class ListExpr:
    """``[a, b, ...]``: a list of expressions."""

    items: tuple[Expr, ...]


Expr = Union[Field, Literal, ListExpr]


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"cannot read {text[pos:].strip()[:20]!r} in {text!r}: "
                             f"write fields, numbers, 'strings', true, false or null")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def parse_arguments(text: str) -> list[Expr]:
    """The comma-separated expressions of ``text``; ``[]`` for an empty text.

    >>> parse_arguments("x, 0, 'it''s', [1, null]")
    [Field(path=('x',)), Literal(value=0), Literal(value="it's"), \
ListExpr(items=(Literal(value=1), Literal(value=None)))]
    """
    tokens = _tokens(text)
    if not tokens:
        return []
    pos = 0

    def expr() -> Expr:
        nonlocal pos
        if pos >= len(tokens):
            raise ValueError(f"an argument is missing at the end of {text!r}")
        kind, value = tokens[pos]
        pos += 1
        if kind == "number":
            number = float(value)
            return Literal(int(value) if re.fullmatch(r"-?\d+", value) else number)
        if kind == "single":
            return Literal(value.replace("''", "'"))
        if kind == "double":
            return Literal(value.replace('""', '"'))
        if kind == "quoted":
            return Field((value,))
        if kind == "name":
            if value.lower() in _KEYWORDS:
                return Literal(_KEYWORDS[value.lower()])
            return Field(tuple(value.split(".")))
        if value == "[":
            items: list[Expr] = []
            if pos < len(tokens) and tokens[pos][1] == "]":
                pos += 1
                return ListExpr(())
            while True:
                items.append(expr())
                if pos < len(tokens) and tokens[pos][1] == ",":
                    pos += 1
                    continue
                if pos < len(tokens) and tokens[pos][1] == "]":
                    pos += 1
                    return ListExpr(tuple(items))
                raise ValueError(f"a list in {text!r} is not closed with ']'")
        raise ValueError(f"unexpected {value!r} in {text!r}")

    args = [expr()]
    while pos < len(tokens):
        if tokens[pos][1] != ",":
            raise ValueError(f"expected ',' before {tokens[pos][1]!r} in {text!r}")
        pos += 1
        args.append(expr())
    return args


def evaluate(expr: Expr, record: dict[str, Any] | None) -> Any:
    """The value of ``expr`` over ``record``; ``record=None`` allows literals only.

    >>> evaluate(parse_arguments("a.b")[0], {"a": {"b": 2}})
    2
    """
    if isinstance(expr, Literal):
        return expr.value
    if isinstance(expr, ListExpr):
        return [evaluate(item, record) for item in expr.items]
    if record is None:
        raise ValueError(f"{expr} is a field name, and there is no record here: "
                         f"write literals (numbers, 'strings', true, false, null)")
    value: Any = record
    for part in expr.path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def render(args: Sequence[Expr]) -> str:
    """The expressions as the user would write them again.

    >>> render(parse_arguments("x,0,'a'"))
    "x, 0, 'a'"
    """
    def one(e: Expr) -> str:
        if isinstance(e, Field):
            return str(e)
        if isinstance(e, ListExpr):
            return "[" + ", ".join(one(i) for i in e.items) + "]"
        if isinstance(e.value, str):
            return "'" + e.value.replace("'", "''") + "'"
        return json.dumps(e.value)
    return ", ".join(one(a) for a in args)


def parse_property(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as JSON when it is JSON, else as a string.

    >>> parse_property("interval=500"), parse_property("path=/tmp/x.db")
    (('interval', 500), ('path', '/tmp/x.db'))
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"{text!r} is not key=value")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def read_json_lines(path: str, what: str) -> Iterator[Any]:
    """The value of each non-blank line of a JSON-lines file (``-``: stdin), read as the
    run goes; a line that is not JSON comes as a :class:`ValueError` naming file and line,
    so one bad line is one error and the rest still run.

    Example::

        for value in read_json_lines("calls.jsonl", "--calls"): ...
    """
    stream: IO[str] = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    label = "stdin" if path == "-" else path
    try:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as exc:
                value = ValueError(f"{label}:{number}: not JSON ({exc}); each line of the "
                                   f"{what} file is one JSON value")
            yield value
    finally:
        if stream is not sys.stdin:
            stream.close()
