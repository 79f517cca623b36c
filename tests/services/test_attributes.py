"""services/platform/attributes.py: a dataclass read from an object of the same shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from services.platform.attributes import from_attributes


@dataclass(frozen=True)
class Shown:
    name: str
    rate: float
    label: str
    derived: int = field(init=False, default=0)


def test_each_field_is_the_attribute_of_its_name_unless_given():
    source = SimpleNamespace(name="a", rate=0.5, label="ignored", derived=9)

    shown = from_attributes(Shown, source, label="given")

    assert shown == Shown(name="a", rate=0.5, label="given")
    assert shown.derived == 0


def test_a_missing_attribute_is_an_error_not_a_default():
    with pytest.raises(AttributeError, match="rate"):
        from_attributes(Shown, SimpleNamespace(name="a", label="b"))
