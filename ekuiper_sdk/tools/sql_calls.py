"""The calls of given functions in a rule's SQL, found and wrapped for a recording.

A small scanner, not a SQL parser: it knows eKuiper's quoting (``'text'``, ``"text"``,
```name```) and parentheses, which is what finding ``f(a, b)`` and its arguments needs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Call:
    """``name(args)`` at ``start:end`` of the SQL; ``args`` are the argument texts."""

    name: str
    start: int
    end: int
    args: tuple[str, ...]


def _skip_quoted(sql: str, i: int) -> int:
    """The index after the quoted text starting at ``i`` (a doubled quote stays inside)."""
    quote, i = sql[i], i + 1
    while i < len(sql):
        if sql[i] == quote:
            if quote != "`" and sql[i + 1:i + 2] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    raise ValueError(f"unclosed {quote} in the rule's SQL: {sql!r}")


def _close_paren(sql: str, open_at: int) -> tuple[int, list[str]]:
    """The index of the ``)`` matching ``sql[open_at]`` and the top-level argument texts."""
    depth, i, begin = 0, open_at, open_at + 1
    args: list[str] = []
    while i < len(sql):
        ch = sql[i]
        if ch in "'\"`":
            i = _skip_quoted(sql, i)
            continue
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth == 0:
                last = sql[begin:i].strip()
                if last or args:
                    args.append(last)
                return i, args
        elif ch == "," and depth == 1:
            args.append(sql[begin:i].strip())
            begin = i + 1
        i += 1
    raise ValueError(f"unbalanced parentheses in the rule's SQL: {sql!r}")


def find_calls(sql: str, names: Collection[str]) -> list[Call]:
    """Every call of a function in ``names`` (case-insensitive), outermost first.

    >>> [(c.name, c.args) for c in find_calls("SELECT up(a, 'x,)'), b FROM s", {"up"})]
    [('up', ('a', "'x,)'"))]
    """
    wanted = {n.casefold() for n in names}
    calls, i = [], 0
    while i < len(sql):
        ch = sql[i]
        if ch in "'\"`":
            i = _skip_quoted(sql, i)
            continue
        match = _IDENT.match(sql, i)
        if match is None:
            i += 1
            continue
        name, after = match.group(), match.end()
        paren = after
        while paren < len(sql) and sql[paren].isspace():
            paren += 1
        if (name.casefold() in wanted and paren < len(sql) and sql[paren] == "("
                and (i == 0 or sql[i - 1] != ".")):
            close, args = _close_paren(sql, paren)
            calls.append(Call(name, i, close + 1, tuple(args)))
        i = after
    return calls


def _select_fields(sql: str) -> list[tuple[int, int]]:
    """The spans of the top-level SELECT list's fields."""
    select = re.match(r"\s*select\s+", sql, re.I)
    if select is None:
        return []
    spans, depth, begin, i = [], 0, select.end(), select.end()
    while i < len(sql):
        ch = sql[i]
        if ch in "'\"`":
            i = _skip_quoted(sql, i)
            continue
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and ch == ",":
            spans.append((begin, i))
            begin = i + 1
        elif depth == 0 and re.match(r"\sfrom\s", sql[i:i + 6], re.I):
            spans.append((begin, i))
            return spans
        i += 1
    spans.append((begin, len(sql)))
    return spans


def wrap_calls(sql: str, names: Collection[str],
               wrap: Callable[[Call, str], str]) -> tuple[str, list[Call]]:
    """``sql`` with each call of ``names`` replaced by ``wrap(call, its text)``; the text
    given has the calls inside its arguments wrapped already. A call that is a whole
    SELECT field without ``AS`` gets ``AS <name>``, the column name eKuiper gives it (seen
    on a real eKuiper: ``SELECT f(x) FROM s`` gives ``{"f": ...}``), so that the rule's
    output keeps its shape. Returns the new SQL and the calls, in SQL order.

    >>> wrap_calls("SELECT up(a) FROM s", {"up"}, lambda c, t: f"w({t})")[0]
    'SELECT w(up(a)) AS up FROM s'
    """
    calls = find_calls(sql, names)
    bare: set[int] = set()
    for start, end in _select_fields(sql):
        field = sql[start:end]
        lead = start + len(field) - len(field.lstrip())
        bare.update(c.start for c in calls
                    if c.start == lead and c.end == lead + len(field.strip()))

    def rewrite(begin: int, end: int) -> str:
        out, pos = [], begin
        for call in calls:
            if call.start < pos or call.end > end:
                continue
            paren = sql.index("(", call.start + len(call.name))
            text = wrap(call, f"{sql[call.start:paren + 1]}{rewrite(paren + 1, call.end - 1)})")
            if call.start in bare:
                text += f" AS {call.name}"
            out.append(sql[pos:call.start] + text)
            pos = call.end
        out.append(sql[pos:end])
        return "".join(out)

    return rewrite(0, len(sql)), calls

