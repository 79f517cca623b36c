"""Service results to bytes and back: orjson out, the dataclass's own type hints in."""

from __future__ import annotations

import dataclasses
import types
import typing
import uuid
from collections.abc import Callable
from datetime import date, datetime
from enum import Enum
from functools import cache
from typing import Any, TypeVar

import orjson

T = TypeVar("T")
Build = Callable[[Any], Any]


def encode(value: object) -> bytes:
    """orjson handles dataclasses, UUIDs, datetimes and enums natively."""
    return orjson.dumps(value, default=_uuid_subclass)


def _uuid_subclass(value: object) -> str:
    """asyncpg returns its own UUID subclass, which orjson does not know."""
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def decode(value_type: type[T], data: bytes) -> T:
    """Rebuild ``value_type`` (a dataclass, or a list of them) from ``encode``'s bytes;
    ValueError when they do not hold one."""
    raw = orjson.loads(data)
    try:
        built: T = _builder(value_type)(raw)
    except (TypeError, KeyError, AttributeError, ValueError) as error:
        raise ValueError(f"not a {value_type!r}: {error!r}") from error
    return built


@cache
def _builder(hint: Any) -> Build:
    """A function turning orjson's output back into ``hint``; made once per type."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(options) != 1:
            raise TypeError(f"cannot decode the union {hint}")
        inner = _builder(options[0])
        return lambda raw: None if raw is None else inner(raw)
    if origin in (list, tuple):
        (item,) = {arg for arg in typing.get_args(hint) if arg is not Ellipsis}
        item_builder = _builder(item)
        return lambda raw: origin(item_builder(entry) for entry in raw)
    if dataclasses.is_dataclass(hint):
        return _dataclass_builder(hint)
    if hint is datetime:
        return datetime.fromisoformat
    if hint is date:
        return date.fromisoformat
    if hint is uuid.UUID:
        return uuid.UUID
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint
    if hint is float:
        return float
    if hint in (int, str, bool):
        return lambda raw: raw
    raise TypeError(f"cannot decode {hint!r}")


def _dataclass_builder(cls: type) -> Build:
    hints = typing.get_type_hints(cls)
    fields = [(field.name, _builder(hints[field.name])) for field in dataclasses.fields(cls)]

    def build(raw: dict[str, Any]) -> Any:
        return cls(**{name: builder(raw[name]) for name, builder in fields})

    return build
