from pathlib import Path

from graph.schema import schema
from tests.factories import run_rollcall

ROOT = Path(__file__).resolve().parent.parent


def test_committed_schema_equals_the_code():
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == schema.as_str() + "\n", "run: rollcall export-schema > schema.graphql"


def test_export_schema_command_prints_it():
    done = run_rollcall("export-schema")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (ROOT / "schema.graphql").read_text()


def test_contract_operations_are_present():
    sdl = schema.as_str()
    for operation in (
        "me: Viewer!",
        "studentDashboard(studentId: ID = null): StudentDashboard!",
        "weeklyAttendance(",
        "classStatistics(classroomId: ID!): ClassStatistics!",
        "studentRanking(studentId: ID = null): StudentRanking!",
        "classRankings(classroomId: ID!, first: Int = 50, after: String = null): StudentRankingConnection!",
        "classroom(id: ID!): Classroom",
        "login(tenant: String!, email: String!, password: String!): AuthPayload!",
        "markAttendance(input: MarkAttendanceInput!): MarkAttendancePayload!",
        "notifications(unreadOnly: Boolean = false, first: Int = 20, after: String = null): NotificationConnection!",
        "notificationPreferences: NotificationPreferences!",
        "updateNotificationPreferences(input: NotificationPreferencesInput!): NotificationPreferences!",
        "markNotificationRead(id: ID!): Notification!",
        "markAllNotificationsRead: Int!",
    ):
        assert operation in sdl, operation
