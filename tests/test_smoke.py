from tests.factories import gql

ME = "query Me { me { email role tenant { slug } student { name classroom { name } } } }"


async def test_student_reads_own_profile(client, factory):
    # given
    school = await factory.school(students=1)
    student = school.students[0]
    # when
    body = await gql(client, ME, token=school.student_token(student))
    # then
    assert body["data"]["me"]["role"] == "STUDENT"
    assert body["data"]["me"]["student"]["name"] == student.name
    assert body["data"]["me"]["tenant"]["slug"] == school.tenant.slug
