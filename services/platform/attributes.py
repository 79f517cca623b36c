"""Dataclass values read from objects of the same shape (an ORM row, another dataclass), so a
value that shows a row as it is names each field once, where it is declared."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, TypeVar

Value = TypeVar("Value")


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(cls) if field.init)


def from_attributes(cls: type[Value], source: object, **given: Any) -> Value:
    """A ``cls`` dataclass: each field ``given``, or else ``source``'s attribute of its name."""
    values = {name: getattr(source, name) for name in _field_names(cls) if name not in given}
    return cls(**values, **given)
