"""Download links: signed by the API, served by the API (``GET /files/<key>``), audited there.

Every link a client gets names the object, the file's name and type, the user it was made for
and when it expires, under an HMAC-SHA256 signature. Following it records a FILE_DOWNLOAD entry
before a byte is served; then the local store's file is sent, or the client is redirected to
a presigned S3 URL valid for minutes. So every download is audited with who and from where,
whatever the store, and a file moved to quarantine stops being served at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode

from services import audit
from services.models import AuditAction
from services.platform.db import SessionFactory
from services.platform.storage import Download, check_key

LINK_PATH = "/files/"
# What the redirect to S3 is valid for: long enough to follow, too short to pass around.
REDIRECT_LIFETIME = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Grant:
    """What a valid link allows: this download, to this user of this tenant."""

    download: Download
    user_id: uuid.UUID
    tenant_id: uuid.UUID


def tenant_of(key: str) -> uuid.UUID | None:
    """The tenant a ``tenants/<tenant>/…`` key belongs to."""
    parts = key.split("/")
    if len(parts) < 3 or parts[0] != "tenants":
        return None
    try:
        return uuid.UUID(parts[1])
    except ValueError:
        return None


class Links:
    def __init__(self, *, secret: str) -> None:
        self._secret = hmac.new(
            secret.encode(), b"rollcall-download-links", hashlib.sha256
        ).digest()

    def _signature(self, key: str, expires: int, download: Download, user: str) -> bytes:
        # JSON, so that no choice of name and type can spell another link's message.
        message = json.dumps([key, expires, download.file_name, download.content_type, user])
        return hmac.new(self._secret, message.encode(), hashlib.sha256).hexdigest().encode()

    def sign(
        self,
        key: str,
        *,
        download: Download,
        user_id: uuid.UUID,
        expires_in: timedelta,
        now: datetime | None = None,
    ) -> str:
        """A link (relative to the API) serving ``key`` to ``user_id`` for ``expires_in``."""
        # Only a tenant's own objects: quarantine/… (and archive/…) keys have no tenant.
        if tenant_of(check_key(key)) is None:
            raise ValueError(f"no link is made for {key!r}")
        expires = int(((now or datetime.now(UTC)) + expires_in).timestamp())
        query = urlencode(
            {
                "expires": expires,
                "name": download.file_name,
                "type": download.content_type,
                "user": str(user_id),
                "signature": self._signature(key, expires, download, str(user_id)).decode(),
            }
        )
        return f"{LINK_PATH}{key}?{query}"

    def verify(self, key: str, query: str, *, now: datetime | None = None) -> Grant | None:
        """The grant of a link, or None when it was tampered with or has expired."""
        values = {name: found[0] for name, found in parse_qs(query).items() if len(found) == 1}
        try:
            expires = int(values["expires"])
            download = Download(file_name=values["name"], content_type=values["type"])
            user_id = uuid.UUID(values["user"])
            signature = values["signature"]
            check_key(key)
        except (KeyError, ValueError):
            return None
        tenant_id = tenant_of(key)
        if tenant_id is None:
            return None
        expected = self._signature(key, expires, download, values["user"])
        # Bytes: compare_digest refuses str holding anything but ASCII.
        if not hmac.compare_digest(expected, signature.encode()):
            return None
        if (now or datetime.now(UTC)).timestamp() > expires:
            return None
        return Grant(download=download, user_id=user_id, tenant_id=tenant_id)


async def record_download(
    session_factory: SessionFactory, *, key: str, grant: Grant, origin: audit.Origin
) -> None:
    """The FILE_DOWNLOAD entry of one download about to be served."""
    await audit.record_alone(
        session_factory,
        tenant_id=grant.tenant_id,
        user_id=grant.user_id,
        action=AuditAction.FILE_DOWNLOAD,
        resource=key.split("/")[2],
        resource_id=key,
        success=True,
        origin=origin,
        details={"fileName": grant.download.file_name, "contentType": grant.download.content_type},
    )
