"""A TCP proxy the test (or benchmark) can take down and bring back: a dependency that vanishes
and returns, as its clients see it, without touching the shared server behind it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit


def target_of(url: str) -> tuple[str, int]:
    """The host and port a database URL names."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5432


def through(url: str, port: int) -> str:
    """``url`` with its host and port replaced by the proxy's (credentials kept)."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0] + "@" if "@" in parts.netloc else ""
    return parts._replace(netloc=f"{credentials}127.0.0.1:{port}").geturl()


class Proxy:
    """A TCP proxy in front of a server. ``down()`` resets every connection through it and
    every new one (the server as its clients see it when it is gone); ``up()`` restores it;
    ``fail_over(host, port)`` resets every connection and sends new ones to another server (a
    replica promoted behind the same address, as clients see it)."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._serving = True
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[int]:
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        try:
            yield server.sockets[0].getsockname()[1]
        finally:
            server.close()
            self.down()

    def down(self) -> None:
        self._serving = False
        for writer in list(self._writers):
            writer.transport.abort()

    def up(self) -> None:
        self._serving = True

    def fail_over(self, host: str, port: int) -> None:
        self._target = (host, port)
        for writer in list(self._writers):
            writer.transport.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if not self._serving:
            writer.transport.abort()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, upstream_writer}
        try:
            await asyncio.gather(
                self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
            )
        finally:
            self._writers -= {writer, upstream_writer}
            writer.transport.abort()
            upstream_writer.transport.abort()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while chunk := await source.read(65536):
                sink.write(chunk)
                await sink.drain()
        sink.transport.abort()
