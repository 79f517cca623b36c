"""Object storage behind one small interface: S3-compatible (minio client) or local disk.

Keys are tenant-scoped and carry 128 random bits (``new_key``). Objects are private: a client
reads one only through a link the API signs and serves (``services.downloads``), which sends the
local store's file itself or redirects to a short presigned S3 URL. A quarantined object moves
under ``quarantine/``, a prefix nothing is ever served from, so links given out before stop
working.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

import urllib3
from minio import Minio
from minio.commonconfig import CopySource
from minio.error import MinioException, S3Error

from services.platform.errors import ErrorCode, ServiceError

CHUNK_SIZE = 1024 * 1024
QUARANTINE_PREFIX = "quarantine/"
_KEY = re.compile(r"^[a-z0-9][a-z0-9/_-]{0,254}$")
# Short timeouts and few retries: an upload waits on storage while the client waits on us.
_HTTP_TIMEOUT = urllib3.Timeout(connect=3, read=30)
Result = TypeVar("Result")
_HTTP_RETRIES = urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504))


class StorageUnavailable(ServiceError):
    """The object store did not answer or refused; nothing was changed on its behalf."""

    code = ErrorCode.STORAGE_UNAVAILABLE


class ObjectMissing(ServiceError):
    code = ErrorCode.NOT_FOUND


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    modified: datetime


@dataclass(frozen=True, slots=True)
class Download:
    """What a signed link serves: the file's name and type travel with the signature."""

    file_name: str
    content_type: str


class ObjectStore(Protocol):
    kind: str

    async def ensure_ready(self) -> None:
        """Create the bucket (or folder) if missing; StorageUnavailable when unreachable."""

    async def put(self, key: str, source: BinaryIO, *, size: int, content_type: str) -> None:
        """Store ``size`` bytes read from ``source`` under ``key``, whole or not at all."""

    def chunks(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes in order; ObjectMissing when there is none."""

    async def delete(self, key: str) -> None:
        """Remove the object; a missing one is not an error."""

    async def move(self, source: str, target: str) -> None:
        """Move an object; repeating a finished move is not an error."""

    async def exists(self, key: str) -> bool: ...

    async def listing(self, prefix: str) -> list[StoredObject]:
        """Every object whose key starts with ``prefix``."""


def new_key(tenant_id: uuid.UUID, kind: str) -> str:
    """A fresh tenant-scoped key nobody can guess: ``tenants/<tenant>/<kind>/<128 bits>``."""
    return f"tenants/{tenant_id}/{kind}/{secrets.token_hex(16)}"


def quarantine_key(key: str) -> str:
    return QUARANTINE_PREFIX + key


def check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key or "//" in key:
        raise ValueError(f"not an object key: {key!r}")
    return key


def content_disposition(file_name: str) -> str:
    """``attachment`` with an ASCII fallback and the RFC 5987 UTF-8 name."""
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", file_name) or "file"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


class LocalStore:
    """Files under ``root``; written to a temporary file, then renamed into place."""

    kind = "file"

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def ensure_ready(self) -> None:
        try:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        except OSError as error:
            raise StorageUnavailable(f"The file store at {self.root} is unusable.") from error

    async def put(self, key: str, source: BinaryIO, *, size: int, content_type: str) -> None:
        target = self.path(key)

        def write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
            try:
                with os.fdopen(handle, "wb") as out:
                    shutil.copyfileobj(source, out, CHUNK_SIZE)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temporary, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise

        try:
            await asyncio.to_thread(write)
        except OSError as error:
            raise StorageUnavailable("The file could not be stored; nothing was kept.") from error

    async def chunks(self, key: str) -> AsyncIterator[bytes]:
        try:
            handle = await asyncio.to_thread(self.path(key).open, "rb")
        except FileNotFoundError as error:
            raise ObjectMissing(f"No object {key}.") from error
        except OSError as error:
            raise StorageUnavailable("The file store could not be read.") from error
        with handle:
            while chunk := await asyncio.to_thread(handle.read, CHUNK_SIZE):
                yield chunk

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self.path(key).unlink)

    async def move(self, source: str, target: str) -> None:
        origin, destination = self.path(source), self.path(target)

        def rename() -> None:
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(origin, destination)
            except FileNotFoundError:
                if not destination.exists():
                    raise

        try:
            await asyncio.to_thread(rename)
        except FileNotFoundError as error:
            raise ObjectMissing(f"No object {source}.") from error
        except OSError as error:
            raise StorageUnavailable("The file store could not move the object.") from error

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path(key).is_file)

    async def listing(self, prefix: str) -> list[StoredObject]:
        def walk() -> list[StoredObject]:
            found = []
            base = self.root / prefix.rstrip("/")
            if not base.exists():
                return []
            for path in base.rglob("*"):
                if path.is_file() and not path.name.startswith("."):
                    modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                    found.append(StoredObject(path.relative_to(self.root).as_posix(), modified))
            return found

        return await asyncio.to_thread(walk)


class S3Store:
    """An S3-compatible bucket through the minio client (blocking: run in threads).

    ``public_endpoint`` signs links for the host clients reach (``http://localhost:9000``
    when the API itself talks to ``minio:9000``); signing needs no request either way.
    """

    kind = "s3"

    def __init__(
        self,
        *,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool,
        region: str = "us-east-1",
        public_endpoint: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.endpoint = endpoint
        http = urllib3.PoolManager(timeout=_HTTP_TIMEOUT, retries=_HTTP_RETRIES, maxsize=16)
        self._client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )
        if public_endpoint:
            public = urlsplit(public_endpoint)
            self._signer = Minio(
                public.netloc,
                access_key=access_key,
                secret_key=secret_key,
                secure=public.scheme == "https",
                region=region,
            )
        else:
            self._signer = self._client

    @classmethod
    def from_url(cls, url: str) -> S3Store:
        """``s3://ACCESS:SECRET@host:port/bucket?secure=false&region=…&public=http://…``."""
        parts = urlsplit(url)
        options = {name: found[-1] for name, found in parse_qs(parts.query).items()}
        bucket = parts.path.strip("/")
        if not (parts.hostname and parts.username and parts.password and bucket):
            raise ValueError("an S3 storage URL needs ACCESS:SECRET@host[:port]/bucket")
        return cls(
            endpoint=parts.netloc.rsplit("@", 1)[1],
            access_key=parts.username,
            secret_key=parts.password,
            bucket=bucket,
            secure=options.get("secure", "true").lower() not in {"false", "0", "no"},
            region=options.get("region", "us-east-1"),
            public_endpoint=options.get("public"),
        )

    async def _call(self, call: Callable[[], Result], doing: str) -> Result:
        try:
            return await asyncio.to_thread(call)
        except S3Error as error:
            if error.code in {"NoSuchKey", "NoSuchObject"}:
                raise ObjectMissing(f"No object {error.object_name}.") from error
            raise StorageUnavailable(f"The object store refused to {doing}.") from error
        except (MinioException, urllib3.exceptions.HTTPError, OSError, ValueError) as error:
            raise StorageUnavailable(f"The object store did not answer ({doing}).") from error

    async def ensure_ready(self) -> None:
        def create() -> None:
            if not self._client.bucket_exists(self.bucket):
                with contextlib.suppress(S3Error):  # created meanwhile by another process
                    self._client.make_bucket(self.bucket)

        await self._call(create, "create the bucket")

    async def put(self, key: str, source: BinaryIO, *, size: int, content_type: str) -> None:
        check_key(key)
        start = source.tell()

        def put() -> None:
            try:
                self._client.put_object(self.bucket, key, source, size, content_type=content_type)
            except S3Error as error:
                if error.code != "NoSuchBucket":
                    raise
                # Storage came up after the API did, or the bucket was removed: make it.
                self._client.make_bucket(self.bucket)
                source.seek(start)
                self._client.put_object(self.bucket, key, source, size, content_type=content_type)

        await self._call(put, "store the file")

    async def chunks(self, key: str) -> AsyncIterator[bytes]:
        check_key(key)
        response = await self._call(
            lambda: self._client.get_object(self.bucket, key), "read the file"
        )
        try:
            while chunk := await self._call(lambda: response.read(CHUNK_SIZE), "read the file"):
                yield chunk
        finally:
            response.close()
            response.release_conn()

    async def delete(self, key: str) -> None:
        check_key(key)
        await self._call(lambda: self._client.remove_object(self.bucket, key), "delete the file")

    async def move(self, source: str, target: str) -> None:
        check_key(source)
        check_key(target)
        try:
            await self._call(
                lambda: self._client.copy_object(
                    self.bucket, target, CopySource(self.bucket, source)
                ),
                "move the file",
            )
        except ObjectMissing:
            if not await self.exists(target):
                raise
        await self.delete(source)

    async def exists(self, key: str) -> bool:
        check_key(key)
        try:
            await self._call(lambda: self._client.stat_object(self.bucket, key), "find the file")
        except ObjectMissing:
            return False
        return True

    async def listing(self, prefix: str) -> list[StoredObject]:
        def walk() -> list[StoredObject]:
            return [
                StoredObject(found.object_name, found.last_modified)
                for found in self._client.list_objects(self.bucket, prefix=prefix, recursive=True)
                if found.object_name and found.last_modified and not found.is_dir
            ]

        return await self._call(walk, "list files")

    def signed_url(self, key: str, *, download: Download, expires_in: timedelta) -> str:
        """A presigned GET serving the object as ``download`` says, for ``expires_in``."""
        return self._signer.presigned_get_object(
            self.bucket,
            check_key(key),
            expires=expires_in,
            response_headers={
                "response-content-type": download.content_type,
                "response-content-disposition": content_disposition(download.file_name),
            },
        )


def create_store(url: str) -> ObjectStore:
    """The store a ``ROLLCALL_STORAGE_URL`` names: ``file://path`` or ``s3://…``."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        return S3Store.from_url(url)
    if parts.scheme == "file":
        return LocalStore(Path(parts.netloc + parts.path))
    raise ValueError(f"unsupported storage URL scheme {parts.scheme!r}")
