"""Both object stores pass the same tests: local disk, and real S3 (SeaweedFS, minio client)."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from services.storage import (
    Download,
    LocalStore,
    ObjectMissing,
    ObjectStore,
    S3Store,
    StorageUnavailable,
    create_store,
    new_key,
    quarantine_key,
)
from tests import files
from tests.factories import api_process

DOWNLOAD = Download(file_name="sick note é.pdf", content_type="application/pdf")


@pytest.fixture(params=["file", "s3"])
async def store(request, tmp_path, s3_server, settings) -> ObjectStore:
    if request.param == "file":
        found: ObjectStore = create_store(f"file://{tmp_path}", secret=settings.jwt_secret)
    else:
        found = create_store(
            s3_server.storage_url(f"t-{uuid.uuid4().hex[:12]}"), secret=settings.jwt_secret
        )
    await found.ensure_ready()
    return found


@pytest.fixture
async def local_http(tmp_path, settings) -> AsyncIterator[httpx.AsyncClient]:
    """An API process serving the local store's links (the store is rooted in tmp_path)."""
    import dataclasses

    async with api_process(dataclasses.replace(settings, storage_url=f"file://{tmp_path}")) as http:
        yield http


async def fetch(store: ObjectStore, url: str, local_http: httpx.AsyncClient) -> httpx.Response:
    if isinstance(store, LocalStore):
        return await local_http.get(url)
    async with httpx.AsyncClient() as http:
        return await http.get(url)


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


async def test_move_is_repeatable(store):
    key = new_key(uuid.uuid4(), "certificates")
    await store.put(key, io.BytesIO(b"%PDF-x"), size=6, content_type="application/pdf")
    await store.move(key, quarantine_key(key))
    await store.move(key, quarantine_key(key))
    assert not await store.exists(key)
    assert await content_of(store, quarantine_key(key)) == b"%PDF-x"
    with pytest.raises(ObjectMissing):
        await store.move(new_key(uuid.uuid4(), "certificates"), quarantine_key("tenants/x"))


async def test_signed_links_serve_the_file_then_refuse_tampering_and_expiry(store, local_http):
    key = new_key(uuid.uuid4(), "certificates")
    content = files.pdf()
    await store.put(key, io.BytesIO(content), size=len(content), content_type="application/pdf")
    url = store.signed_url(key, download=DOWNLOAD, expires_in=timedelta(hours=24))
    served = await fetch(store, url, local_http)
    assert served.status_code == 200
    assert served.content == content
    assert served.headers["content-type"].startswith("application/pdf")
    assert "attachment" in served.headers["content-disposition"]

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    signature = "signature" if "signature" in query else "X-Amz-Signature"
    expiry = "expires" if "expires" in query else "X-Amz-Expires"
    altered = []
    for name, value in [
        (signature, query[signature][:-1] + ("0" if query[signature][-1] != "0" else "1")),
        (expiry, str(int(query[expiry]) + 86400)),
        ("type" if "type" in query else "response-content-type", "text/html"),
    ]:
        altered.append(urlunsplit(parts._replace(query=urlencode({**query, name: value}))))
    other_key = new_key(uuid.uuid4(), "certificates")
    altered.append(url.replace(key, other_key))
    for bad in altered:
        assert (await fetch(store, bad, local_http)).status_code == 403, bad

    short = store.signed_url(key, download=DOWNLOAD, expires_in=timedelta(seconds=1))
    await asyncio.sleep(2.1)
    assert (await fetch(store, short, local_http)).status_code == 403


async def test_a_moved_object_link_stops_working(store, local_http):
    key = new_key(uuid.uuid4(), "certificates")
    await store.put(key, io.BytesIO(b"%PDF-1"), size=6, content_type="application/pdf")
    url = store.signed_url(key, download=DOWNLOAD, expires_in=timedelta(hours=1))
    assert (await fetch(store, url, local_http)).status_code == 200
    await store.move(key, quarantine_key(key))
    assert (await fetch(store, url, local_http)).status_code in {403, 404}


def test_local_links_for_quarantine_or_odd_keys_are_never_valid(tmp_path):
    store = LocalStore(tmp_path, secret="s" * 32)
    with pytest.raises(ValueError):
        store.signed_url("../etc/passwd", download=DOWNLOAD, expires_in=timedelta(hours=1))
    url = store.signed_url(
        quarantine_key("tenants/a/certificates/b"), download=DOWNLOAD, expires_in=timedelta(1)
    )
    parts = urlsplit(url)
    assert store.verify(parts.path.removeprefix("/files/"), parts.query) is None
    assert store.verify("tenants/a", "") is None
    assert store.verify("tenants/a", "expires=x&name=a&type=b&signature=c") is None


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


def test_local_links_with_any_query_are_refused_not_crashed(tmp_path):
    store = LocalStore(tmp_path, secret="s" * 32)
    url = store.signed_url("tenants/a/b", download=DOWNLOAD, expires_in=timedelta(hours=1))
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    assert store.verify("tenants/a/b", parts.query) == DOWNLOAD
    for name, value in [("signature", "é" * 64), ("name", "sick note é.pdf\n"), ("expires", "-1")]:
        assert store.verify("tenants/a/b", urlencode({**query, name: value})) is None
