"""A small graphql-transport-ws client (tests, benchmarks, drills): answers pings, routes each
operation's messages to its own queue, and records how the connection closed."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

PROTOCOL = "graphql-transport-ws"


@dataclass(frozen=True)
class Closed(Exception):
    """The server closed the connection (``code`` 1006: it vanished without a close frame)."""

    code: int
    reason: str


class OperationError(Exception):
    """The server answered a subscription with an ``error`` message."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0].get("message") if errors else "error")
        self.errors = errors

    @property
    def code(self) -> str | None:
        return self.errors[0].get("extensions", {}).get("code") if self.errors else None


class Completed(Exception):
    """The server completed the operation."""


class LiveClient:
    def __init__(self, connection: ClientConnection, *, answer_pings: bool = True) -> None:
        self.connection = connection
        self.answer_pings = answer_pings
        self.acknowledged: asyncio.Future[dict[str, Any]] = asyncio.Future()
        self.closed: asyncio.Future[Closed] = asyncio.Future()
        self.pings = 0
        self._operations: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._reader = asyncio.create_task(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, url: str, *, subprotocols: tuple[str, ...] = (PROTOCOL,), answer_pings: bool = True
    ) -> AsyncIterator[LiveClient]:
        async with connect(
            url,
            subprotocols=list(subprotocols),
            open_timeout=10,
            compression=None,  # type: ignore[arg-type]
        ) as connection:
            client = cls(connection, answer_pings=answer_pings)
            try:
                yield client
            finally:
                client._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await client._reader

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(orjson.dumps(message).decode())

    async def init(self, token: str | None, *, within: float = 5.0) -> dict[str, Any]:
        """``connection_init`` with the token; the ack's payload, or raises Closed."""
        payload = {} if token is None else {"authorization": f"Bearer {token}"}
        await self.send({"type": "connection_init", "payload": payload})
        done, _ = await asyncio.wait(
            [self.acknowledged, self.closed], timeout=within, return_when=asyncio.FIRST_COMPLETED
        )
        if self.acknowledged in done:
            return self.acknowledged.result()
        if self.closed in done:
            raise self.closed.result()
        raise TimeoutError("no connection_ack")

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        operation_id = str(next(self._ids))
        self._operations[operation_id] = asyncio.Queue()
        await self.send(
            {
                "id": operation_id,
                "type": "subscribe",
                "payload": {"query": query, "variables": variables or {}},
            }
        )
        return operation_id

    async def next(self, operation_id: str, *, within: float = 5.0) -> dict[str, Any]:
        """The operation's next result (``data``); raises OperationError, Completed, Closed,
        or TimeoutError after ``within`` seconds."""
        message = await asyncio.wait_for(self._operations[operation_id].get(), within)
        kind = message["type"]
        if kind == "next":
            payload: dict[str, Any] = message["payload"]
            return payload
        if kind == "error":
            raise OperationError(message["payload"])
        if kind == "complete":
            raise Completed(operation_id)
        raise self.closed.result()

    def pending(self, operation_id: str) -> int:
        """Messages of the operation received and not yet taken."""
        return self._operations[operation_id].qsize()

    async def complete(self, operation_id: str) -> None:
        await self.send({"id": operation_id, "type": "complete"})

    async def wait_closed(self, *, within: float = 5.0) -> Closed:
        return await asyncio.wait_for(asyncio.shield(self.closed), within)

    async def _read(self) -> None:
        try:
            async for raw in self.connection:
                message = orjson.loads(raw)
                kind = message.get("type")
                if kind == "connection_ack":
                    self.acknowledged.set_result(message.get("payload") or {})
                elif kind == "ping":
                    self.pings += 1
                    if self.answer_pings:
                        await self.send({"type": "pong"})
                elif kind in {"next", "error", "complete"}:
                    queue = self._operations.get(message.get("id", ""))
                    if queue is not None:
                        queue.put_nowait(message)
        except ConnectionClosed:
            pass
        finally:
            received = self.connection.protocol.close_rcvd
            closed = Closed(received.code, received.reason) if received else Closed(1006, "")
            if not self.closed.done():
                self.closed.set_result(closed)
            for queue in self._operations.values():
                queue.put_nowait({"type": "closed"})
