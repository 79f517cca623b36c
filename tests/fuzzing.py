"""Operations drawn from the schema for fuzzing the endpoint: every query and mutation field
with generated arguments (hypothesis-graphql), NUL bytes, odd text and dates out of any range
included. What must hold of each answer: no INTERNAL_ERROR, no 5xx."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from graphql import build_schema
from hypothesis import strategies as st
from hypothesis_graphql import mutations, nodes, queries

from graph.schema import schema

# Upload arguments travel only in multipart requests (tested in test_certificates.py and
# test_roster_import.py): a JSON document cannot hold one.
NEEDS_UPLOAD = frozenset({"uploadMedicalCertificate", "importRoster"})
ZONES = [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))]


def text_nodes(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """A string literal: ``strategy``'s values, or any text at all."""
    return st.one_of(strategy, st.text(max_size=30)).map(nodes.String)


SCALARS = {
    "Date": text_nodes(st.dates(min_value=date(1, 1, 1)).map(date.isoformat)),
    "DateTime": text_nodes(
        st.datetimes(min_value=datetime(1, 1, 2), timezones=st.sampled_from(ZONES)).map(
            datetime.isoformat
        )
    ),
    "JSON": text_nodes(st.just("{}")),
    "Upload": st.just(nodes.Null),
}


def operations() -> st.SearchStrategy[str]:
    """A query or mutation document of the served schema."""
    served = build_schema(schema.as_str())
    assert served.mutation_type is not None
    mutation_fields = tuple(
        name for name in served.mutation_type.fields if name not in NEEDS_UPLOAD
    )
    return st.one_of(
        queries(served, custom_scalars=SCALARS),
        mutations(served, fields=mutation_fields, custom_scalars=SCALARS),
    )


def failure(status: int, body: Any) -> str | None:
    """What is wrong with an answer (a 5xx, or an INTERNAL_ERROR), or None when it is fine."""
    answers = body if isinstance(body, list) else [body]
    if status >= 500:
        messages = [error.get("message") for a in answers for error in a.get("errors") or ()]
        return f"HTTP {status}: {messages[:1]}"
    for answer in answers:
        for error in answer.get("errors") or ():
            if (error.get("extensions") or {}).get("code") == "INTERNAL_ERROR":
                return f"INTERNAL_ERROR: {error.get('message')}"
    return None
