"""graph/attributes.py: a strawberry type built from the attributes of what it shows."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
import strawberry

from graph.attributes import from_attributes


@strawberry.type
class Shown:
    id: strawberry.ID
    owner_id: strawberry.ID | None
    name: str
    label: str
    model: strawberry.Private[object]

    @strawberry.field
    def computed(self) -> int:
        return 1


def test_fields_come_from_the_attributes_of_the_same_names_ids_as_strings():
    ident, owner = uuid.uuid4(), uuid.uuid4()
    source = SimpleNamespace(id=ident, owner_id=owner, name="a", title="b")

    shown = from_attributes(Shown, source, label=source.title, model=source)

    assert (shown.id, shown.owner_id, shown.name, shown.label) == (str(ident), str(owner), "a", "b")
    assert type(shown.id) is str
    assert shown.model is source


def test_a_missing_optional_id_stays_null():
    source = SimpleNamespace(id=uuid.uuid4(), owner_id=None, name="a", label="b")

    assert from_attributes(Shown, source, model=None).owner_id is None


def test_a_private_field_is_never_copied():
    source = SimpleNamespace(id=1, owner_id=None, name="a", label="b", model="kept apart")

    with pytest.raises(TypeError, match="model"):
        from_attributes(Shown, source)
