"""Sending mail through SMTP (aiosmtplib)."""

from __future__ import annotations

from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

SMTP_TIMEOUT_SECONDS = 10


async def send_email(
    *, smtp_url: str, sender: str, recipient: str, subject: str, body: str, message_id: str
) -> None:
    """One plain-text message. ``smtps://`` uses TLS; ``smtp://`` upgrades with STARTTLS when
    the server offers it (``?starttls=false`` to never try).

    ``message_id`` is the same on every try of one delivery: a try cut short after the server
    accepted the message is sent again (at least once), and the copies share their
    Message-ID, by which mail servers and clients recognise them as one message.
    """
    parts = urlsplit(smtp_url)
    message = EmailMessage()
    message["Message-ID"] = message_id
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = subject
    message.set_content(body)
    starttls = parse_qs(parts.query).get("starttls", ["auto"])[0]
    await aiosmtplib.send(
        message,
        hostname=parts.hostname,
        port=parts.port or (465 if parts.scheme == "smtps" else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=parts.scheme == "smtps",
        start_tls=None if starttls == "auto" else starttls == "true",
        timeout=SMTP_TIMEOUT_SECONDS,
    )
