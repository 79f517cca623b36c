"""Strawberry types built from the attributes of the value they show."""

from __future__ import annotations

import functools
from typing import Any, TypeVar

import strawberry
from strawberry.types.base import StrawberryOptional, get_object_definition
from strawberry.types.private import is_private

T = TypeVar("T")


def from_attributes(cls: type[T], source: object, /, **given: Any) -> T:
    """The strawberry type ``cls`` showing ``source`` as it is: each field not ``given`` is
    ``source``'s attribute of the same name, an ID (a UUID mostly) as its string. A field
    renamed or computed, and a ``strawberry.Private`` one, is ``given``."""
    values = dict(given)
    for name, is_id in _copied_fields(cls):
        if name not in given:
            value = getattr(source, name)
            values[name] = strawberry.ID(str(value)) if is_id and value is not None else value
    return cls(**values)


@functools.cache
def _copied_fields(cls: type) -> tuple[tuple[str, bool], ...]:
    """``cls``'s fields that hold a value (no resolver, not private): each one's name, and
    whether it is an ID (or an optional one)."""
    return tuple(
        (field.python_name, _is_id(field.type))
        for field in get_object_definition(cls, strict=True).fields
        if field.base_resolver is None and not is_private(field.type)
    )


def _is_id(kind: object) -> bool:
    if isinstance(kind, StrawberryOptional):
        kind = kind.of_type
    return kind is strawberry.ID
