"""Alert e-mails through a real SMTP server (aiosmtpd): sent, skipped by preference, or failed
after three tries and dead-lettered."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from email import message_from_bytes

import pytest
from arq.constants import result_key_prefix
from sqlalchemy import delete, func, select, update

from jobs.notifications import requeue_stale_emails
from jobs.worker import shared_context
from services.models import (
    AttendanceStatus,
    Channel,
    DeadLetter,
    DeliveryStatus,
    Notification,
    NotificationDelivery,
)
from services.notifications import deliver_email, update_preferences
from services.queue import SEND_NOTIFICATION_EMAIL, schedule_threshold_check
from tests.factories import School, daily, gql, run_jobs
from tests.servers import free_ports


@pytest.fixture
async def clean_dead_letters(session_factory):
    async with session_factory() as session, session.begin():
        await session.execute(delete(DeadLetter))


async def student_falls_below_80(factory, arq_redis, school: School) -> None:
    """16 of 21 present: WARNING, checked by the real job."""
    student = school.students[0]
    history = [AttendanceStatus.PRESENT] * 16 + [AttendanceStatus.ABSENT] * 5
    await factory.records(school, student, daily(history, start=date(2026, 1, 5)))
    async with factory.session_factory() as session:
        await schedule_threshold_check(
            arq_redis, session, tenant_id=school.tenant.id, student_ids=[student.id]
        )


async def deliveries(factory, school: School) -> dict[Channel, NotificationDelivery]:
    async with factory.session_factory() as session:
        rows = await session.scalars(
            select(NotificationDelivery).where(NotificationDelivery.tenant_id == school.tenant.id)
        )
        return {row.channel: row for row in rows}


async def test_the_alert_is_mailed_to_the_student(factory, settings, arq_redis, smtp):
    port, inbox = smtp
    school = await factory.school(students=1)
    account = school.accounts[school.students[0].id]
    await student_falls_below_80(factory, arq_redis, school)
    await run_jobs(dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{port}"))
    [(recipients, content)] = inbox.messages
    message = message_from_bytes(content)
    assert recipients == [account.email]
    assert message["Subject"] == "Attendance warning"
    assert "76.2%" in message.get_payload()
    sent = await deliveries(factory, school)
    assert sent[Channel.EMAIL].status is DeliveryStatus.SENT and sent[Channel.EMAIL].attempts == 1
    assert sent[Channel.IN_APP].status is DeliveryStatus.SENT
    email = sent[Channel.EMAIL]
    assert message["Message-ID"] == f"<{email.notification_id}.{email.id}@rollcall.invalid>"


async def mailed_then_pending(factory, settings, arq_redis, port: int, *, ago: timedelta):
    """An alert e-mail sent, then its delivery set back to PENDING as of ``ago``: as if its
    worker stopped before recording it. The settings that mail, and the delivery."""
    school = await factory.school(students=1)
    await student_falls_below_80(factory, arq_redis, school)
    mailing = dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{port}")
    await run_jobs(mailing)
    email = (await deliveries(factory, school))[Channel.EMAIL]
    async with factory.session_factory() as session, session.begin():
        await session.execute(
            update(NotificationDelivery)
            .where(NotificationDelivery.id == email.id)
            .values(status=DeliveryStatus.PENDING, updated_at=func.now() - ago)
        )
    return school, mailing, email


async def test_a_delivery_sent_again_keeps_its_message_id(factory, settings, arq_redis, smtp):
    # given a delivered e-mail whose success was never recorded (its worker stopped)
    port, inbox = smtp
    _, mailing, email = await mailed_then_pending(
        factory, settings, arq_redis, port, ago=timedelta(0)
    )
    # when it is sent again
    assert await deliver_email(
        session_factory=factory.session_factory,
        delivery_id=email.id,
        smtp_url=mailing.smtp_url,
        sender=mailing.email_from,
        final_try=False,
    )
    # then both copies are one message to the mail system
    first, again = (message_from_bytes(content) for _, content in inbox.messages)
    assert first["Message-ID"] == again["Message-ID"]


async def test_only_enabled_channels_are_used(client, factory, settings, arq_redis, smtp):
    port, inbox = smtp
    # given one student who turned e-mail off, and one who turned in-app off
    school = await factory.school(students=1)
    other = await factory.school(students=1)
    async with factory.session_factory() as session:
        await update_preferences(
            session,
            tenant_id=school.tenant.id,
            user_id=school.accounts[school.students[0].id].id,
            changes={"email_enabled": False},
        )
        await update_preferences(
            session,
            tenant_id=other.tenant.id,
            user_id=other.accounts[other.students[0].id].id,
            changes={"in_app_enabled": False},
        )
    await student_falls_below_80(factory, arq_redis, school)
    await student_falls_below_80(factory, arq_redis, other)
    # when the jobs run
    await run_jobs(dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{port}"))
    # then the first is told in-app only, the second by e-mail only
    assert set(await deliveries(factory, school)) == {Channel.IN_APP}
    assert set(await deliveries(factory, other)) == {Channel.EMAIL}
    assert [recipients for recipients, _ in inbox.messages] == [
        [other.accounts[other.students[0].id].email]
    ]
    listed = await gql(
        client, "{ notifications { totalCount } }", token=other.student_token(other.students[0])
    )
    assert listed["data"]["notifications"]["totalCount"] == 0


async def test_a_failing_mail_server_gets_three_tries_then_a_dead_letter(
    factory, settings, arq_redis, clean_dead_letters
):
    school = await factory.school(students=1)
    await student_falls_below_80(factory, arq_redis, school)
    await run_jobs(dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{free_ports(1)[0]}"))
    email = (await deliveries(factory, school))[Channel.EMAIL]
    assert email.status is DeliveryStatus.FAILED and email.attempts == 3
    assert email.last_error
    async with factory.session_factory() as session:
        letters = list(
            await session.scalars(
                select(DeadLetter).where(DeadLetter.function == "send_notification_email")
            )
        )
        notification = await session.scalar(
            select(Notification).where(Notification.tenant_id == school.tenant.id)
        )
    assert [letter.args for letter in letters] == [[email.id]]
    assert notification is not None and notification.in_app


async def test_an_email_whose_job_was_lost_is_queued_again_once(factory, settings, arq_redis, smtp):
    # given an e-mail delivery left PENDING 5 minutes ago, its job gone (Redis lost it)
    port, inbox = smtp
    school, mailing, email = await mailed_then_pending(
        factory, settings, arq_redis, port, ago=timedelta(minutes=5)
    )
    # the earlier run's result is still kept: arq would refuse the id, the sweep clears it
    assert await arq_redis.exists(f"{result_key_prefix}{SEND_NOTIFICATION_EMAIL}:{email.id}")
    # when the sweep runs twice before any worker does
    async with shared_context(mailing) as ctx:
        ctx["redis"] = arq_redis
        assert await requeue_stale_emails(ctx) == 1
        assert await requeue_stale_emails(ctx) == 0  # already queued: not twice
    await run_jobs(mailing)
    # then it is sent (again: the same Message-ID) and recorded
    assert (await deliveries(factory, school))[Channel.EMAIL].status is DeliveryStatus.SENT
    first, again = (message_from_bytes(content) for _, content in inbox.messages)
    assert first["Message-ID"] == again["Message-ID"]
