"""Payload classes to and from plain dicts (Avro records, JSON), with one cached plan per class."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from datetime import date, datetime
from functools import cache
from typing import Any

from hub.domain import events as ev


class PayloadError(ValueError):
    """A payload dict does not fit its event type (missing or mistyped field)."""


def _unwrap_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


@cache
def _plan(cls: type) -> tuple[tuple[str, str], ...]:
    """(field name, kind) per field; kind is one of: plain, date, datetime, address, tuple."""
    hints = typing.get_type_hints(cls)
    plan = []
    for f in dataclasses.fields(cls):
        tp = _unwrap_optional(hints[f.name])
        if tp is date:
            kind = "date"
        elif tp is datetime:
            kind = "datetime"
        elif tp is ev.Address:
            kind = "address"
        elif typing.get_origin(tp) is tuple:
            kind = "tuple"
        else:
            kind = "plain"
        plan.append((f.name, kind))
    return tuple(plan)


def _convert(kind: str, value: Any, from_text: bool) -> Any:
    if value is None or kind == "plain":
        return value
    if kind == "date":
        if isinstance(value, str) and from_text:
            try:
                return date.fromisoformat(value)
            except ValueError:
                raise PayloadError("expected an ISO date (YYYY-MM-DD)") from None
        if isinstance(value, datetime) or not isinstance(value, date):
            raise PayloadError(f"expected a date, got {_kind(value)}")
        return value
    if kind == "datetime":
        if isinstance(value, str) and from_text:
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                raise PayloadError("expected an ISO 8601 timestamp") from None
        if not isinstance(value, datetime):
            raise PayloadError(f"expected a timestamp, got {_kind(value)}")
        return value
    if kind == "address":
        if isinstance(value, ev.Address):
            return value
        return payload_from_dict(ev.Address, value, from_text=from_text)
    if kind == "tuple":
        if not isinstance(value, list | tuple):
            raise PayloadError(f"expected a list, got {_kind(value)}")
        return tuple(value)
    raise AssertionError(kind)


def _kind(value: Any) -> str:
    """Name the type of a bad value, never the value itself (it may be personal data)."""
    return type(value).__name__


def payload_from_dict(cls: type, data: dict[str, Any], *, from_text: bool = False) -> Any:
    """Build ``cls`` from a dict; ``from_text`` parses ISO dates (JSON input and stored state)."""
    if not isinstance(data, dict):
        raise PayloadError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    kwargs = {}
    try:
        for name, kind in _plan(cls):
            if name in data:
                kwargs[name] = _convert(kind, data[name], from_text)
    except PayloadError as exc:
        raise PayloadError(f"{cls.__name__}.{name}: {exc}") from None
    except ValueError as exc:
        raise PayloadError(f"{cls.__name__}.{name}: {exc}") from None
    unknown = set(data) - {n for n, _ in _plan(cls)}
    if unknown:
        raise PayloadError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise PayloadError(f"{cls.__name__}: {exc}") from None


def payload_to_dict(payload: Any) -> dict[str, Any]:
    """Shallow-by-plan dict of a payload, nested Address as dict, tuples as lists."""
    out = {}
    for name, kind in _plan(type(payload)):
        value = getattr(payload, name)
        if kind == "address" and value is not None:
            value = payload_to_dict(value)
        elif kind == "tuple":
            value = list(value)
        out[name] = value
    return out


@cache
def _nested(cls: type) -> tuple[tuple[str, str], ...]:
    return tuple((n, k) for n, k in _plan(cls) if k in ("address", "tuple"))


def payload_from_record(cls: type, data: dict[str, Any]) -> Any:
    """Fast path for records already checked by Avro decoding (types and field names are right):
    only nested records and arrays are converted. See :func:`record_reader`.
    """
    try:
        return record_reader(cls)(data)
    except (TypeError, ValueError) as exc:  # a field the class lacks or misses; not a record
        raise PayloadError(f"{cls.__name__}: {exc}") from None


@cache
def record_reader(cls: type) -> Callable[[dict[str, Any]], Any]:
    """The function that builds ``cls`` from a record as Avro decoding gives it, made once per
    class: a plain record goes straight to the class; a nested ``Address`` (a dict, or a union
    branch given as ``(name, record)``) becomes an ``Address``, an array a tuple. Field names
    and types are not checked beyond what the classes do (a wrong or missing name is a
    ``TypeError``): Avro decoding has checked them.
    """
    nested = _nested(cls)
    if not nested:
        def read_plain(data: dict[str, Any]) -> Any:
            return cls(**data)
        return read_plain

    address = ev.Address

    def read_nested(data: dict[str, Any]) -> Any:
        data = dict(data)
        for name, kind in nested:
            value = data.get(name)
            if value is None:
                continue
            if kind == "address":
                if isinstance(value, tuple):  # a union branch given as (name, record)
                    value = value[1]
                data[name] = address(**value)
            else:
                data[name] = tuple(value)
        return cls(**data)
    return read_nested
