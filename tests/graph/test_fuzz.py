"""Documents drawn from the schema, sent by every kind of caller: no answer is an
INTERNAL_ERROR or a 5xx (the long run: ``python -m scripts.fuzz_api``)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import failure, operations

CALLERS = ("anonymous", "admin", "teacher", "student")


@pytest.fixture(scope="module")
async def tokens(factory) -> dict[str, str | None]:
    school = await factory.school(students=2)
    return {
        "anonymous": None,
        "admin": school.token(school.admin),
        "teacher": school.token(school.teachers[0]),
        "student": school.student_token(school.students[0]),
    }


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(document=operations(), caller=st.sampled_from(CALLERS))
async def test_no_document_fails_inside(client, tokens, document, caller):
    token = tokens[caller]
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = await client.post("/graphql", json={"query": document}, headers=headers)
    assert failure(response.status_code, response.json()) is None, document
