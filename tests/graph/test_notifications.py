"""Notifications: the viewer's own list, read state and preferences."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.models import Notification, NotificationType, Severity
from services.notifications import Draft, create_notification
from tests.factories import School, error_codes, gql

LIST = """
query List($unread: Boolean, $first: Int, $after: String) {
  notifications(unreadOnly: $unread, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { id type title message severity read actionUrl createdAt } }
  }
}"""
READ = "mutation R($id: ID!) { markNotificationRead(id: $id) { id read readAt } }"
READ_ALL = "mutation { markAllNotificationsRead }"
PREFERENCES = "{ notificationPreferences { emailEnabled inAppEnabled attendanceAlerts fileUpdates systemAnnouncements updatedAt } }"
UPDATE = """
mutation U($input: NotificationPreferencesInput!) {
  updateNotificationPreferences(input: $input) {
    emailEnabled inAppEnabled attendanceAlerts fileUpdates systemAnnouncements updatedAt
  }
}"""


async def stored(factory, school: School, user, *drafts: Draft) -> list[Notification | None]:
    """``drafts`` for ``user``, in one transaction: each row, or None where its dedupe key
    was taken."""
    async with factory.session_factory() as session, session.begin():
        return [
            await create_notification(
                session, tenant_id=school.tenant.id, user_id=user.id, draft=draft
            )
            for draft in drafts
        ]


async def notify(factory, school: School, user, count: int) -> list[uuid.UUID]:
    warnings = [
        Draft(
            kind=NotificationType.ATTENDANCE_WARNING,
            severity=Severity.WARNING,
            title=f"Notice {n}",
            message="Your attendance is below 80%.",
            action_url="/dashboard",
        )
        for n in range(count)
    ]
    return [row.id for row in await stored(factory, school, user, *warnings)]


async def test_pages_walk_every_notification_newest_first(client, factory):
    # given
    school = await factory.school(students=1)
    account = school.accounts[school.students[0].id]
    ids = await notify(factory, school, account, 7)
    token = school.student_token(school.students[0])
    seen, after = [], None
    # when
    while True:
        page = (await gql(client, LIST, {"first": 3, "after": after}, token=token))["data"][
            "notifications"
        ]
        assert page["totalCount"] == 7
        seen += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    # then
    assert sorted(node["id"] for node in seen) == sorted(str(i) for i in ids)
    assert [node["createdAt"] for node in seen] == sorted(
        (node["createdAt"] for node in seen), reverse=True
    )
    assert seen[0]["type"] == "ATTENDANCE_WARNING" and seen[0]["severity"] == "WARNING"


async def test_read_state_and_unread_filter(client, factory):
    school = await factory.school(students=1)
    account = school.accounts[school.students[0].id]
    first, *_ = await notify(factory, school, account, 3)
    token = school.student_token(school.students[0])
    read = (await gql(client, READ, {"id": str(first)}, token=token))["data"][
        "markNotificationRead"
    ]
    assert read["read"] is True and read["readAt"]
    again = (await gql(client, READ, {"id": str(first)}, token=token))["data"][
        "markNotificationRead"
    ]
    assert again["readAt"] == read["readAt"]  # idempotent
    unread = (await gql(client, LIST, {"unread": True}, token=token))["data"]["notifications"]
    assert unread["totalCount"] == 2 and str(first) not in [
        e["node"]["id"] for e in unread["edges"]
    ]
    assert (await gql(client, READ_ALL, token=token))["data"]["markAllNotificationsRead"] == 2
    assert (await gql(client, READ_ALL, token=token))["data"]["markAllNotificationsRead"] == 0
    assert (await gql(client, LIST, {"unread": True}, token=token))["data"]["notifications"][
        "totalCount"
    ] == 0


async def test_nobody_reads_or_marks_another_user_s_notification(client, factory):
    school = await factory.school(students=2)
    other_school = await factory.school(students=1)
    [theirs] = await notify(factory, school, school.accounts[school.students[0].id], 1)
    for token in (
        school.student_token(school.students[1]),
        school.token(school.admin),
        other_school.token(other_school.admin),
    ):
        body = await gql(client, READ, {"id": str(theirs)}, token=token)
        assert error_codes(body) == ["NOT_FOUND"]
        assert (await gql(client, LIST, token=token))["data"]["notifications"]["totalCount"] == 0
        assert (await gql(client, READ_ALL, token=token))["data"]["markAllNotificationsRead"] == 0
    owner = school.student_token(school.students[0])
    assert (await gql(client, LIST, {"unread": True}, token=owner))["data"]["notifications"][
        "totalCount"
    ] == 1


async def test_dedupe_key_makes_a_notification_happen_once(factory):
    school = await factory.school(students=1)
    account = school.accounts[school.students[0].id]
    barred = Draft(
        kind=NotificationType.MAHROOM_ALERT,
        severity=Severity.ERROR,
        title="Barred",
        message="Attendance at or below 75%.",
        dedupe_key="mahroom:1",
    )
    [first] = await stored(factory, school, account, barred)
    [again] = await stored(factory, school, account, barred)  # a transaction of its own
    assert first is not None and again is None


async def test_preferences_default_to_everything_on(client, factory):
    school = await factory.school(students=1)
    prefs = (await gql(client, PREFERENCES, token=school.token(school.teachers[0])))["data"][
        "notificationPreferences"
    ]
    assert prefs == {
        "emailEnabled": True,
        "inAppEnabled": True,
        "attendanceAlerts": True,
        "fileUpdates": True,
        "systemAnnouncements": True,
        "updatedAt": None,
    }


NAMES = ["emailEnabled", "inAppEnabled", "attendanceAlerts", "fileUpdates", "systemAnnouncements"]


@pytest.fixture(scope="module")
async def preference_school(factory) -> School:
    return await factory.school(students=1)


@pytest.mark.asyncio
@settings(max_examples=30)
@given(
    st.lists(
        st.dictionaries(st.sampled_from(NAMES), st.booleans(), min_size=1), min_size=1, max_size=4
    )
)
async def test_partial_updates_keep_the_other_preferences(client, preference_school, updates):
    # given the current preferences
    token = preference_school.student_token(preference_school.students[0])
    expected = (await gql(client, PREFERENCES, token=token))["data"]["notificationPreferences"]
    for change in updates:
        # when
        body = await gql(client, UPDATE, {"input": change}, token=token)
        # then only the named ones change
        expected = {**expected, **change}
        result = body["data"]["updateNotificationPreferences"]
        assert {name: result[name] for name in NAMES} == {name: expected[name] for name in NAMES}
    stored = (await gql(client, PREFERENCES, token=token))["data"]["notificationPreferences"]
    assert {name: stored[name] for name in NAMES} == {name: expected[name] for name in NAMES}
    assert stored["updatedAt"] is not None


@pytest.mark.parametrize(
    ("payload", "field"), [({}, "input"), ({"fileUpdates": None}, "input.file_updates")]
)
async def test_bad_preference_updates_change_nothing(client, factory, payload, field):
    school = await factory.school(students=1)
    token = school.token(school.admin)
    body = await gql(client, UPDATE, {"input": payload}, token=token)
    assert (
        error_codes(body) == ["VALIDATION_ERROR"]
        and body["errors"][0]["extensions"]["field"] == field
    )
    assert (await gql(client, PREFERENCES, token=token))["data"]["notificationPreferences"][
        "updatedAt"
    ] is None


async def test_anonymous_callers_get_nothing(client):
    for query in (LIST, PREFERENCES, READ_ALL):
        body = await gql(client, query)
        assert error_codes(body) == ["UNAUTHENTICATED"]
