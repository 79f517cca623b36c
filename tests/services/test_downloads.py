"""Download links: what a signature covers, and that no query crashes the check."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.downloads import Grant, Links, tenant_of
from services.platform.storage import Download, quarantine_key

LINKS = Links(secret="s" * 32)
DOWNLOAD = Download(file_name="sick note é.pdf", content_type="application/pdf")
TENANT, USER = uuid.uuid4(), uuid.uuid4()
KEY = f"tenants/{TENANT}/certificates/{'a' * 32}"


def signed(key: str = KEY, **overrides) -> tuple[str, str]:
    url = LINKS.sign(
        key, download=DOWNLOAD, user_id=USER, expires_in=timedelta(hours=1), **overrides
    )
    parts = urlsplit(url)
    return parts.path.removeprefix("/files/"), parts.query


def test_a_link_grants_its_download_to_its_user_in_the_keys_tenant():
    key, query = signed()
    assert key == KEY
    assert LINKS.verify(key, query) == Grant(download=DOWNLOAD, user_id=USER, tenant_id=TENANT)
    assert Links(secret="t" * 32).verify(key, query) is None  # another deployment's secret
    later = datetime.now(UTC) + timedelta(hours=1, seconds=1)
    assert LINKS.verify(key, query, now=later) is None


@pytest.mark.parametrize(
    "key",
    [
        "../etc/passwd",
        quarantine_key(KEY),
        "exports/x/y",
        f"tenants/not-a-uuid/certificates/{'a' * 32}",
    ],
)
def test_no_link_is_made_for_quarantine_or_keys_outside_a_tenant(key):
    with pytest.raises(ValueError):
        signed(key)


def test_every_signed_field_is_covered():
    key, query = signed()
    values = dict(parse_qsl(query))
    for name, value in [
        ("name", "other.pdf"),
        ("type", "text/html"),
        ("user", str(uuid.uuid4())),
        ("expires", str(int(values["expires"]) + 1)),
        ("signature", "é" * 64),
    ]:
        assert LINKS.verify(key, urlencode({**values, name: value})) is None, name
    assert LINKS.verify(key.replace("a" * 32, "b" * 32), query) is None
    assert LINKS.verify(key, query + "&user=" + str(USER)) is None  # repeated: ambiguous


@given(key=st.text(max_size=120), query=st.text(max_size=300))
def test_any_key_and_query_is_refused_not_crashed(key, query):
    assert LINKS.verify(key, query) is None


def test_tenant_of_reads_only_tenant_keys():
    assert tenant_of(KEY) == TENANT
    assert tenant_of(f"tenants/{TENANT}") is None
    assert tenant_of(quarantine_key(KEY)) is None
