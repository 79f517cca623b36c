"""Statements per request do not grow with list length (dataloaders batch every list)."""

from __future__ import annotations

from tests.factories import counted_statements, gql

ROSTER = """
query Roster($id: ID!) {
  classroom(id: $id) {
    name subjects { name } teachers { email }
    students(first: 100) { edges { node { name classroom { name subjects { name } } } } }
  }
}"""
RANKINGS = """
query Rankings($id: ID!) {
  classRankings(classroomId: $id, first: 100) {
    edges { node { rank student { name classroom { name teachers { email } } } } }
  }
}"""


async def statements_for(client, query: str, classroom_id: str, token: str) -> int:
    with counted_statements() as statements:
        body = await gql(client, query, {"id": classroom_id}, token=token)
    assert "errors" not in body, body
    return len(
        [
            s
            for s in statements
            if not s.lstrip().upper().startswith(("BEGIN", "ROLLBACK", "COMMIT", "SELECT 1"))
        ]
    )


async def test_statement_count_is_independent_of_list_length(client, factory):
    # given a small and a large classroom
    small = await factory.school(students=2)
    large = await factory.school(students=30)
    await factory.refresh()
    for query in (ROSTER, RANKINGS):
        # when
        few = await statements_for(
            client, query, str(small.classrooms[0].id), small.token(small.admin)
        )
        many = await statements_for(
            client, query, str(large.classrooms[0].id), large.token(large.admin)
        )
        # then
        assert few == many, query
        assert many <= 6
