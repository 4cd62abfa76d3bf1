"""The part of OData v4's query options the DUBU simulator understands.

``$filter``: comparisons (``eq ne gt ge lt le``) of a property path (``status/brugervendtNoegle``,
``afdeling/orgEnhedId``, ``id``) with a string, number or null literal, combined with ``and``,
``or``, ``not`` and parentheses, plus ``startswith(path,'x')`` and ``contains(path,'x')``.
``$expand``: ``name`` or ``name($select=a,b)``. ``$select``: property names. Anything else is an
``ODataError`` (answered 400, as an OData service does).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any


class ODataError(ValueError):
    """A query option the service does not accept; answered 400."""


_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)"
                    r"|(?P<punct>[(),])|(?P<word>[A-Za-z_][\w/.]*))")
_COMPARE = {"eq", "ne", "gt", "ge", "lt", "le"}

Predicate = Callable[[dict[str, Any]], bool]


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise ODataError(f"syntax error at position {pos} in $filter")
        pos = m.end()
        if m.group("str") is not None:
            out.append(("lit", m.group("str")[1:-1].replace("''", "'")))
        elif m.group("num") is not None:
            n = m.group("num")
            out.append(("lit", float(n) if "." in n else int(n)))
        elif m.group("punct") is not None:
            out.append((m.group("punct"), None))
        else:
            word = m.group("word")
            if word == "null":
                out.append(("lit", None))
            elif word in ("true", "false"):
                out.append(("lit", word == "true"))
            else:
                out.append(("word", word))
    return out


def resolve(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("/"):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "eq":
        return left == right
    if op == "ne":
        return left != right
    if left is None or right is None:
        return False
    try:
        return {"gt": left > right, "ge": left >= right, "lt": left < right,
                "le": left <= right}[op]
    except TypeError:
        raise ODataError(f"cannot compare {type(left).__name__} with "
                         f"{type(right).__name__}") from None


class _Parser:
    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, Any]:
        return self.toks[self.i] if self.i < len(self.toks) else ("end", None)

    def take(self, kind: str, value: Any = None) -> Any:
        k, v = self.peek()
        if k != kind or (value is not None and v != value):
            raise ODataError(f"$filter: expected {value or kind}, found {v or k}")
        self.i += 1
        return v

    def parse(self) -> Predicate:
        pred = self.or_()
        if self.peek()[0] != "end":
            raise ODataError(f"$filter: unexpected {self.peek()[1] or self.peek()[0]}")
        return pred

    def or_(self) -> Predicate:
        left = self.and_()
        while self.peek() == ("word", "or"):
            self.i += 1
            right = self.and_()
            left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
        return left

    def and_(self) -> Predicate:
        left = self.unary()
        while self.peek() == ("word", "and"):
            self.i += 1
            right = self.unary()
            left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
        return left

    def unary(self) -> Predicate:
        if self.peek() == ("word", "not"):
            self.i += 1
            inner = self.unary()
            return lambda r: not inner(r)
        if self.peek()[0] == "(":
            self.i += 1
            inner = self.or_()
            self.take(")")
            return inner
        word = self.take("word")
        if word in ("startswith", "contains"):
            self.take("(")
            path = self.take("word")
            self.take(",")
            needle = self.take("lit")
            self.take(")")
            if word == "startswith":
                return lambda r: str(resolve(r, path) or "").startswith(str(needle))
            return lambda r: str(needle) in str(resolve(r, path) or "")
        op = self.take("word")
        if op not in _COMPARE:
            raise ODataError(f"$filter: unknown operator {op!r}")
        literal = self.take("lit")
        return lambda r: _compare(op, resolve(r, word), literal)


def parse_filter(text: str | None) -> Predicate:
    if not text:
        return lambda r: True
    return _Parser(text).parse()


def split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    if depth != 0:
        raise ODataError("unbalanced parentheses")
    tail = text[start:].strip()
    if tail:
        parts.append(tail)
    return parts


def parse_expand(text: str | None, allowed: set[str]) -> dict[str, set[str] | None]:
    """``{navigation property: its $select (None = all)}``."""
    out: dict[str, set[str] | None] = {}
    for item in split_top_level(text or ""):
        m = re.fullmatch(r"(\w+)(?:\((.*)\))?", item)
        if not m or m.group(1) not in allowed:
            raise ODataError(f"Could not find a property named '{item.split('(')[0]}' to "
                             "expand")
        select = None
        for opt in filter(None, (o.strip() for o in (m.group(2) or "").split(";"))):
            key, _, value = opt.partition("=")
            if key != "$select":
                raise ODataError(f"nested query option {key!r} is not supported")
            select = {s.strip() for s in value.split(",") if s.strip()}
        out[m.group(1)] = select
    return out


def parse_select(text: str | None) -> set[str] | None:
    if not text:
        return None
    return {s.strip() for s in text.split(",") if s.strip()}


def project(record: dict[str, Any], select: set[str] | None) -> dict[str, Any]:
    if select is None:
        return dict(record)
    return {k: v for k, v in record.items() if k in select}
