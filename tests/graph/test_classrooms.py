"""``classrooms`` and ``me { classrooms }``: each viewer's own classes, a page at a time, in
constant SQL, never another tenant's."""

from __future__ import annotations

import pytest

from tests.factories import counted_statements, error_codes, gql

CLASSROOMS = """
query Classrooms($first: Int, $after: String) {
  classrooms(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node { id name } }
  }
}"""
MINE = "{ me { classrooms { totalCount edges { node { id name } } } } }"


def names(body) -> list[str]:
    assert "errors" not in body, body
    return [edge["node"]["name"] for edge in body["data"]["classrooms"]["edges"]]


@pytest.fixture
async def school(factory):
    # teacher 0 teaches Class 0, teacher 1 the rest; another school beside it
    await factory.school(classrooms=2)
    return await factory.school(classrooms=3, teachers=2, students=1)


async def test_each_viewer_sees_their_own_classes(client, school):
    admin = school.token(school.admin)
    assert names(await gql(client, CLASSROOMS, token=admin)) == ["Class 0", "Class 1", "Class 2"]
    teacher = school.token(school.teachers[1])
    assert names(await gql(client, CLASSROOMS, token=teacher)) == ["Class 1", "Class 2"]
    student = school.students_of(school.classrooms[2])[0]
    assert names(await gql(client, CLASSROOMS, token=school.student_token(student))) == ["Class 2"]


async def test_the_viewer_field_says_the_same_as_the_query(client, school):
    for token in (school.token(school.teachers[0]), school.token(school.admin)):
        mine = (await gql(client, MINE, token=token))["data"]["me"]["classrooms"]
        listed = (await gql(client, CLASSROOMS, token=token))["data"]["classrooms"]
        assert mine["totalCount"] == listed["totalCount"]
        assert mine["edges"] == [{"node": edge["node"]} for edge in listed["edges"]]


async def test_pages_walk_the_whole_list_in_constant_sql(client, factory, school):
    admin = school.token(school.admin)
    await gql(client, CLASSROOMS, token=admin)  # the token's account is cached from here on
    seen, after, statements_per_page = [], None, []
    while True:
        with counted_statements() as statements:
            body = await gql(client, CLASSROOMS, {"first": 1, "after": after}, token=admin)
        statements_per_page.append(len(statements))
        page = body["data"]["classrooms"]
        assert page["totalCount"] == 3
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        seen += names(body)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == ["Class 0", "Class 1", "Class 2"]
    bigger = await factory.school(classrooms=8)
    await gql(client, CLASSROOMS, token=bigger.token(bigger.admin))
    with counted_statements() as statements:
        body = await gql(client, CLASSROOMS, {"first": 5}, token=bigger.token(bigger.admin))
    assert len(names(body)) == 5 and body["data"]["classrooms"]["totalCount"] == 8
    # the page and its count, whatever the page or the school
    assert statements_per_page == [2, 2, 2] and len(statements) == 2


async def test_a_malformed_cursor_is_a_validation_error(client, school):
    body = await gql(
        client, CLASSROOMS, {"after": "not-a-cursor"}, token=school.token(school.admin)
    )
    assert error_codes(body) == ["VALIDATION_ERROR"]
