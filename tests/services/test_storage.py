"""Both object stores pass the same tests: local disk, and real S3 (SeaweedFS, minio client)."""

from __future__ import annotations

import dataclasses
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from services.downloads import Links
from services.platform.storage import (
    Download,
    LocalStore,
    ObjectMissing,
    ObjectStore,
    S3Store,
    StorageUnavailable,
    new_key,
    quarantine_key,
)
from tests import files
from tests.factories import api_process, follow_link

DOWNLOAD = Download(file_name="sick note é.pdf", content_type="application/pdf")


@pytest.fixture
async def api(store, tmp_path, s3_server, settings) -> AsyncIterator[httpx.AsyncClient]:
    """An API process serving links to ``store``'s objects."""
    url = f"file://{tmp_path}" if isinstance(store, LocalStore) else store_url(store, s3_server)
    async with api_process(dataclasses.replace(settings, storage_url=url)) as http:
        yield http


def store_url(store: S3Store, s3_server) -> str:
    return s3_server.storage_url(store.bucket)


async def content_of(store: ObjectStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.chunks(key)])


async def test_put_read_list_delete(store):
    tenant = uuid.uuid4()
    key = new_key(tenant, "certificates")
    assert key.startswith(f"tenants/{tenant}/certificates/") and len(key.rsplit("/", 1)[1]) == 32
    content = files.pdf() + bytes(3 * 1024 * 1024 + 7)
    await store.put(key, io.BytesIO(content), size=len(content), content_type="application/pdf")
    assert await content_of(store, key) == content
    assert await store.exists(key)
    listed = await store.listing(f"tenants/{tenant}/")
    assert [found.key for found in listed] == [key]
    assert listed[0].modified <= datetime.now(UTC) + timedelta(seconds=5)
    await store.delete(key)
    await store.delete(key)  # already gone: no error
    assert not await store.exists(key)
    with pytest.raises(ObjectMissing):
        await content_of(store, key)


@pytest.mark.parametrize("key", ["../escape", "tenants//x", "/absolute", "tenants/a/../../b", ""])
async def test_every_store_refuses_what_is_not_an_object_key(store, key):
    with pytest.raises(ValueError):
        await store.put(key, io.BytesIO(b"x"), size=1, content_type="text/plain")
    with pytest.raises(ValueError):
        await content_of(store, key)
    with pytest.raises(ValueError):
        await store.exists(key)
    with pytest.raises(ValueError):
        await store.delete(key)
    with pytest.raises(ValueError):
        await store.move(key, new_key(uuid.uuid4(), "certificates"))


async def test_move_is_repeatable(store):
    key = new_key(uuid.uuid4(), "certificates")
    await store.put(key, io.BytesIO(b"%PDF-x"), size=6, content_type="application/pdf")
    await store.move(key, quarantine_key(key))
    await store.move(key, quarantine_key(key))
    assert not await store.exists(key)
    assert await content_of(store, quarantine_key(key)) == b"%PDF-x"
    with pytest.raises(ObjectMissing):
        await store.move(new_key(uuid.uuid4(), "certificates"), quarantine_key("tenants/x"))


async def test_links_serve_the_file_then_refuse_tampering_and_expiry(store, api, settings):
    links = Links(secret=settings.jwt_secret)
    tenant_id, user_id = uuid.uuid4(), uuid.uuid4()
    key = new_key(tenant_id, "certificates")
    content = files.pdf()
    await store.put(key, io.BytesIO(content), size=len(content), content_type="application/pdf")
    url = links.sign(key, download=DOWNLOAD, user_id=user_id, expires_in=timedelta(hours=24))
    served = await follow_link(api, url)
    assert served.status_code == 200
    assert served.content == content
    assert served.headers["content-type"].startswith("application/pdf")
    assert "attachment" in served.headers["content-disposition"]
    if isinstance(store, S3Store):  # the redirect is short-lived
        location = httpx.URL((await api.get(url)).headers["location"])
        assert location.params["X-Amz-Expires"] == "300"

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    altered = [
        urlunsplit(parts._replace(query=urlencode({**query, name: value})))
        for name, value in [
            (
                "signature",
                query["signature"][:-1] + ("0" if query["signature"][-1] != "0" else "1"),
            ),
            ("expires", str(int(query["expires"]) + 86400)),
            ("type", "text/html"),
            ("user", str(uuid.uuid4())),
        ]
    ]
    altered.append(url.replace(key, new_key(tenant_id, "certificates")))
    for bad in altered:
        assert (await api.get(bad)).status_code == 403, bad
    expired = links.sign(
        key,
        download=DOWNLOAD,
        user_id=user_id,
        expires_in=timedelta(hours=1),
        now=datetime.now(UTC) - timedelta(hours=1, seconds=1),
    )
    assert (await api.get(expired)).status_code == 403


async def test_a_moved_object_link_stops_working(store, api, settings):
    key = new_key(uuid.uuid4(), "certificates")
    await store.put(key, io.BytesIO(b"%PDF-1"), size=6, content_type="application/pdf")
    url = Links(secret=settings.jwt_secret).sign(
        key, download=DOWNLOAD, user_id=uuid.uuid4(), expires_in=timedelta(hours=1)
    )
    assert (await follow_link(api, url)).status_code == 200
    await store.move(key, quarantine_key(key))
    assert (await api.get(url)).status_code == 404


async def test_an_unreachable_s3_is_unavailable(unused_tcp_port):
    store = S3Store.from_url(f"s3://a:b@127.0.0.1:{unused_tcp_port}/bucket?secure=false")
    with pytest.raises(StorageUnavailable):
        await store.ensure_ready()
    with pytest.raises(StorageUnavailable):
        await store.put("tenants/x/y", io.BytesIO(b"%PDF-"), size=5, content_type="a/b")


async def test_s3_creates_a_missing_bucket_on_first_put(s3_server):
    store = S3Store.from_url(s3_server.storage_url(f"late-{uuid.uuid4().hex[:10]}"))
    key = new_key(uuid.uuid4(), "certificates")
    await store.put(key, io.BytesIO(b"%PDF-1"), size=6, content_type="application/pdf")
    assert await store.exists(key)
